// Activations: the book's figure 6-10 ff. — a histogram per hidden layer of
// what a batch looks like there, for a network with BatchNorm and one
// without, side by side. By default untrained 5×100 networks on 1000 rows of
// N(0, 1) (no training needed); or two stored models on test images.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { InspectRequestSchema, LayerInspection } from "@gen/bnserve/v1/inference_service_pb";
import { Activation, BnMode, Split, WeightInit_Kind } from "@gen/bnserve/v1/types_pb";
import { describeError, inference, registry } from "../api";
import { Chart, COLORS, histogramOption } from "../charts";
import type { PageContext } from "../main";
import { errorBox, field, fmt, h, numberInput, select } from "../ui";

type Which = "activation" | "affine" | "batchnorm";

function histogramOf(l: LayerInspection, which: Which) {
  if (which === "affine") return l.affineOutput;
  if (which === "batchnorm") return l.batchnormOutput ?? l.affineOutput;
  return l.activationOutput;
}

export async function render(ctx: PageContext): Promise<void> {
  const { root, signal } = ctx;
  const source = select("act-source", [["untrained", "untrained networks"], ["models", "two stored models"]]);
  const activation = select("act-activation", [["sigmoid", "sigmoid"], ["relu", "ReLU"], ["tanh", "tanh"]]);
  const init = select("act-init", [["1", "std 1"], ["0.1", "std 0.1"], ["0.05", "std 0.05"], ["0.01", "std 0.01"],
    ["xavier", "Xavier"], ["he", "He"]]);
  const layersIn = numberInput("act-layers", 5, { min: 1, max: 20 });
  const width = numberInput("act-width", 100, { min: 1, max: 1000 });
  const rows = numberInput("act-rows", 1000, { min: 2, max: 10000 });
  const which = select("act-which", [["activation", "activation output"], ["affine", "Affine output"],
    ["batchnorm", "BatchNorm output"]]);
  const bnMode = select("act-bnmode", [["batch", "batch statistics (as in training)"], ["inference", "running statistics"]]);

  const models = await registry.listModels({}, { signal });
  const modelOptions: [string, string][] = models.models.map((m) => [m.name, `${m.name} v${m.latestVersion}`]);
  const left = select("act-left", modelOptions, models.models.find((m) => /bn/.test(m.name) && !/plain/.test(m.name))?.name);
  const right = select("act-right", modelOptions, models.models.find((m) => /plain/.test(m.name))?.name);

  const untrainedFields = h("div", { class: "form-row" },
    field("activation", activation), field("weights", init), field("hidden layers", layersIn),
    field("width", width));
  const modelFields = h("div", { class: "form-row", hidden: true },
    field("left model", left), field("right model", right));
  source.addEventListener("change", () => {
    untrainedFields.hidden = source.value !== "untrained";
    modelFields.hidden = source.value === "untrained";
  });
  const show = h("button", { class: "primary", id: "act-show", type: "button" }, "Show");
  const out = h("div", { id: "act-out" });
  root.append(h("h1", {}, "Activation distributions"),
    h("section", { class: "card" },
      h("p", { class: "muted" }, "Each hidden layer's distribution for one batch, with and without BatchNorm ",
        "(the book's figures 6-10 to 6-14 and 6-16)."),
      h("div", { class: "form-row" }, field("network", source), field("show", which), field("BatchNorm", bnMode),
        field("rows", rows, "N(0, 1) rows, or test images for models")),
      untrainedFields, modelFields, h("div", { class: "form-row" }, show)),
    out);

  function request(useBatchnorm: boolean, side: string): MessageInitShape<typeof InspectRequestSchema> {
    const mode = bnMode.value === "batch" ? BnMode.BATCH_STATISTICS : BnMode.INFERENCE;
    const act = { sigmoid: Activation.SIGMOID, relu: Activation.RELU, tanh: Activation.TANH }[activation.value] ?? Activation.SIGMOID;
    // Fixed ranges where the activation bounds them, as the book's plots.
    const range = which.value === "activation" && source.value === "untrained"
      ? (act === Activation.SIGMOID ? { rangeMin: 0, rangeMax: 1 } : act === Activation.TANH ? { rangeMin: -1, rangeMax: 1 } : {})
      : {};
    if (source.value === "models") {
      return {
        network: { case: "model", value: { name: side } },
        input: { case: "data", value: { source: { case: "builtin", value: { name: "mnist-digits", split: Split.TEST, limit: rows.valueAsNumber || 1000 } } } },
        bnMode: mode, bins: 30, ...range,
      };
    }
    const weightInit = init.value === "xavier" ? { kind: WeightInit_Kind.XAVIER }
      : init.value === "he" ? { kind: WeightInit_Kind.HE } : { kind: WeightInit_Kind.STD, std: Number(init.value) };
    const n = Math.max(1, layersIn.valueAsNumber || 5);
    const w = Math.max(1, width.valueAsNumber || 100);
    return {
      network: { case: "untrained", value: { seed: 1n, network: {
        inputSize: w, hiddenSizes: Array(n).fill(w), outputSize: 10, activation: act, weightInit, useBatchnorm,
      } } },
      input: { case: "randomNormalRows", value: rows.valueAsNumber || 1000 },
      seed: 2n, bnMode: mode, bins: 30, ...range,
    };
  }

  // Fills `col` (already on the page, so that charts get their size).
  async function column(col: HTMLElement, req: MessageInitShape<typeof InspectRequestSchema>, color: string,
    signal: AbortSignal): Promise<void> {
    try {
      const res = await inference.inspect(req, { signal });
      if (signal.aborted) return;
      const grid = h("div", { class: "hist-grid" });
      col.append(grid);
      for (const l of res.layers) {
        const hist = histogramOf(l, which.value as Which);
        if (!hist) continue;
        const el = h("div", { class: "chart hist" });
        grid.append(h("div", { class: "hist-panel", "data-layer": l.layer }, el,
          h("small", { class: "muted" }, `mean ${fmt(hist.mean)} · std ${fmt(hist.std)}`)));
        new Chart(el, signal).set(histogramOption(hist.counts.map(Number), hist.min, hist.max, {
          title: `${l.layer}-layer`, color,
          xMin: req.rangeMin, xMax: req.rangeMax,
        }), hist.counts.length);
      }
    } catch (err) {
      if (!signal.aborted) col.append(errorBox(describeError(err)));
    }
  }

  // Each Show replaces the previous figures and their charts.
  let shown: AbortController | null = null;
  async function draw(): Promise<void> {
    shown?.abort();
    shown = new AbortController();
    const drawSignal = AbortSignal.any([signal, shown.signal]);
    show.disabled = true;
    try {
      const models = source.value === "models";
      const a = h("section", { class: "card hist-row", "data-bn": "on" },
        h("h2", {}, models ? left.value : "with BatchNorm"));
      const b = h("section", { class: "card hist-row", "data-bn": "off" },
        h("h2", {}, models ? right.value : "without BatchNorm"));
      out.replaceChildren(a, b);
      await Promise.all([
        column(a, request(true, left.value), COLORS.bn, drawSignal),
        column(b, request(false, right.value), COLORS.plain, drawSignal),
      ]);
    } finally {
      show.disabled = false;
    }
  }
  show.addEventListener("click", () => void draw());
  await draw();
}
