// Try it: draw a digit with the mouse or a finger; each stroke (and, while
// drawing, a few times a second) goes through the MNIST preprocessing and
// Predict, and the ten class probabilities show as bars.
import { describeError, inference, registry } from "../api";
import { barsOption, Chart } from "../charts";
import type { PageContext } from "../main";
import { SIZE, toMnist } from "../mnist";
import { errorBox, field, h, select } from "../ui";

const CANVAS = 280;
const STROKE = 20;
const THROTTLE_MS = 150;
const CLASSES = Array.from({ length: 10 }, (_, i) => String(i));

export async function render(ctx: PageContext): Promise<void> {
  const { root, signal } = ctx;
  const res = await registry.listModels({}, { signal });
  const names = res.models.map((m) => m.name);
  const model = select("try-model", names.map((n) => [n, n]),
    names.includes("digits") ? "digits" : names[0]);
  const canvas = h("canvas", { id: "digit-canvas", width: CANVAS, height: CANVAS, class: "draw" });
  const preview = h("canvas", { id: "digit-preview", width: SIZE, height: SIZE, class: "preview" });
  const prediction = h("div", { class: "prediction", id: "prediction" });
  const answeredBy = h("p", { class: "muted", id: "answered-by" });
  const probsEl = h("div", { class: "chart", id: "probabilities" });
  const message = h("div", {});
  const clear = h("button", { type: "button", id: "clear" }, "Clear");
  root.append(h("h1", {}, "Try it"),
    h("div", { class: "grid-2" },
      h("section", { class: "card" },
        h("div", { class: "form-row" }, field("model", model), clear),
        h("p", { class: "muted" }, "Draw a digit (mouse or touch)."),
        h("div", { class: "draw-row" }, canvas,
          h("div", {}, h("small", { class: "muted" }, "what the model sees (28×28)"), preview))),
      h("section", { class: "card" }, h("h2", {}, "Prediction"), prediction, answeredBy, probsEl, message)));
  if (names.length === 0) message.append(errorBox("No model yet: train one on the Jobs page."));

  const probs = new Chart(probsEl, signal);
  probs.set(barsOption(CLASSES, [{ name: "probability", values: Array(10).fill(0) }], { yMin: 0, yMax: 1 }), 0);
  const g = canvas.getContext("2d", { willReadFrequently: true })!;
  g.lineCap = "round";
  g.lineJoin = "round";
  g.lineWidth = STROKE;
  g.strokeStyle = "#fff";

  let drawing = false;
  let last: [number, number] = [0, 0];
  let inFlight = false;
  let again = false;
  let lastSent = 0;

  function point(ev: PointerEvent): [number, number] {
    const r = canvas.getBoundingClientRect();
    return [((ev.clientX - r.left) * CANVAS) / r.width, ((ev.clientY - r.top) * CANVAS) / r.height];
  }

  function image(): Float32Array | null {
    const rgba = g.getImageData(0, 0, CANVAS, CANVAS).data;
    const alpha = new Uint8ClampedArray(CANVAS * CANVAS);
    for (let i = 0; i < alpha.length; i++) alpha[i] = rgba[4 * i + 3];
    return toMnist(alpha, CANVAS, CANVAS);
  }

  function showPreview(x: Float32Array | null): void {
    const p = preview.getContext("2d")!;
    const img = p.createImageData(SIZE, SIZE);
    for (let i = 0; i < SIZE * SIZE; i++) {
      const v = Math.round(255 * (x?.[i] ?? 0));
      img.data.set([v, v, v, 255], 4 * i);
    }
    p.putImageData(img, 0, 0);
  }

  async function predict(): Promise<void> {
    if (inFlight) {
      again = true;
      return;
    }
    const x = image();
    showPreview(x);
    if (!x || !model.value) return;
    inFlight = true;
    lastSent = performance.now();
    try {
      const r = await inference.predict({
        model: { name: model.value },
        inputs: { shape: [1n, BigInt(SIZE * SIZE)], values: Array.from(x) },
      }, { signal });
      const p = r.probabilities?.values ?? [];
      const cls = r.predictedClasses[0] ?? 0;
      prediction.textContent = String(cls);
      prediction.dataset.probability = String(p[cls] ?? 0);
      answeredBy.textContent = `${r.modelName} v${r.modelVersion} · p = ${(p[cls] ?? 0).toFixed(3)}`;
      probs.set(barsOption(CLASSES, [{ name: "probability", values: Array.from(p) }], { yMin: 0, yMax: 1, highlight: cls }), p.length);
      message.replaceChildren();
    } catch (err) {
      if (!signal.aborted) message.replaceChildren(errorBox(describeError(err)));
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        void predict();
      }
    }
  }

  canvas.addEventListener("pointerdown", (ev) => {
    drawing = true;
    canvas.setPointerCapture(ev.pointerId);
    last = point(ev);
    g.beginPath();
    g.arc(last[0], last[1], STROKE / 2, 0, 2 * Math.PI);
    g.fillStyle = "#fff";
    g.fill();
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!drawing) return;
    const p = point(ev);
    g.beginPath();
    g.moveTo(last[0], last[1]);
    g.lineTo(p[0], p[1]);
    g.stroke();
    last = p;
    if (performance.now() - lastSent > THROTTLE_MS) void predict();
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    void predict();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  clear.addEventListener("click", () => {
    g.clearRect(0, 0, CANVAS, CANVAS);
    showPreview(null);
    prediction.textContent = "";
    answeredBy.textContent = "";
    probs.set(barsOption(CLASSES, [{ name: "probability", values: Array(10).fill(0) }], { yMin: 0, yMax: 1 }), 0);
  });
  model.addEventListener("change", () => void predict());
  showPreview(null);
}
