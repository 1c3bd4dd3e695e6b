// Models: every model with its versions and aliases; for one version its
// training config, final metrics, per-layer BatchNorm parameters and running
// statistics (from Inspect), and an Evaluate button with the confusion matrix.
import type { ModelVersion } from "@gen/bnserve/v1/model_registry_pb";
import { Activation, OptimizerType, Split, WeightInit_Kind } from "@gen/bnserve/v1/types_pb";
import { describeError, inference, registry } from "../api";
import { barsOption, Chart, COLORS, confusionOption } from "../charts";
import type { PageContext } from "../main";
import { errorBox, field, fmt, h, numberInput, pct, select } from "../ui";

const CLASSES = Array.from({ length: 10 }, (_, i) => String(i));

function facts(v: ModelVersion): [string, string][] {
  const n = v.network;
  const t = v.training;
  const init = n?.weightInit;
  const data = t?.trainData?.source;
  const m = v.finalMetrics;
  return [
    ["network", n ? `${n.inputSize}-${n.hiddenSizes.join("-")}-${n.outputSize}` : "–"],
    ["activation", Activation[n?.activation ?? 0] ?? "–"],
    ["BatchNorm", (n?.useBatchnorm ?? true) ? "on" : "off"],
    ["weight init", init ? (init.kind === WeightInit_Kind.STD ? `N(0, ${init.std}²)` : WeightInit_Kind[init.kind]) : "–"],
    ["optimizer", t ? `${OptimizerType[t.optimizer?.type ?? 0]} lr ${t.optimizer?.learningRate ?? "default"}` : "–"],
    ["epochs × batch", t ? `${t.epochs} × ${t.batchSize}` : "–"],
    ["training data", data?.case === "builtin" ? `${data.value.name} (${data.value.limit || "all"})` : data?.case ?? "–"],
    ["final train accuracy", m ? pct(m.trainAccuracy) : "–"],
    ["final validation accuracy", m && m.validationAccuracy ? pct(m.validationAccuracy) : "–"],
    ["final train loss", m ? fmt(m.trainLoss) : "–"],
    ["job", v.jobId || "(imported)"],
    ["aliases", v.aliases.join(", ") || "–"],
    ["created by", v.createdBy || "–"],
    ["served folded", v.servedFolded ? "yes" : "no"],
  ];
}

export async function render(ctx: PageContext): Promise<void> {
  const { root, signal } = ctx;
  const res = await registry.listModels({}, { signal });
  const list = h("div", { class: "model-list", id: "model-list" });
  root.append(h("h1", {}, "Models"), list);
  for (const m of res.models) {
    const aliases = Object.entries(m.aliases).map(([a, ver]) => `${a} → v${ver}`).join(", ");
    list.append(h("div", { class: "model-card", "data-model": m.name },
      h("strong", {}, m.name), " ",
      ...m.versions.slice(-8).map((ver) => h("a", { class: "chip", href: `#/models/${encodeURIComponent(m.name)}/${ver}` }, `v${ver}`)),
      aliases ? h("small", { class: "muted" }, ` ${aliases}`) : null));
  }
  if (res.models.length === 0) {
    list.append(h("p", { class: "muted" }, "No models yet: train one on the Jobs page."));
    return;
  }
  const name = ctx.params[0] ?? res.models[0].name;
  const model = res.models.find((m) => m.name === name);
  const version = Number(ctx.params[1] ?? model?.latestVersion ?? 0);
  await renderVersion(ctx, name, version);
}

async function renderVersion(ctx: PageContext, name: string, version: number): Promise<void> {
  const { root, signal } = ctx;
  const ref = version ? { name, selector: { case: "version" as const, value: version } } : { name };
  const v = await registry.getModel({ model: ref }, { signal });
  const trainedOn = v.training?.trainData?.source;
  const defaultData = trainedOn?.case === "builtin" ? trainedOn.value.name : "mnist-digits";

  // --- Evaluate ----------------------------------------------------------------
  const dataset = select("eval-dataset", [["mnist-digits", "mnist-digits"], ["fashion-mnist", "fashion-mnist"]], defaultData);
  const split = select("eval-split", [["test", "test"], ["train", "train"]]);
  const limit = numberInput("eval-limit", 1000, { min: 0, step: 100 });
  const result = h("div", { id: "eval-result" });
  const perClassEl = h("div", { class: "chart", id: "per-class" });
  const confusionEl = h("div", { class: "chart tall", id: "confusion" });
  let perClass: Chart | undefined;
  let confusion: Chart | undefined;
  const evalButton = h("button", { class: "primary", id: "evaluate", type: "button" }, "Evaluate");
  evalButton.addEventListener("click", async () => {
    evalButton.disabled = true;
    result.textContent = "evaluating…";
    try {
      const r = await inference.evaluate({
        model: ref,
        data: { source: { case: "builtin", value: {
          name: dataset.value, split: split.value === "test" ? Split.TEST : Split.TRAIN, limit: limit.valueAsNumber || 0,
        } } },
      }, { signal });
      result.replaceChildren(h("span", { class: "big" }, pct(r.accuracy)),
        ` accuracy on ${r.numExamples} examples, loss ${fmt(r.loss)}`);
      const labels = CLASSES.slice(0, r.numClasses);
      perClass?.set(barsOption(labels, [{ name: "accuracy", values: r.perClassAccuracy, color: COLORS.bn }],
        { yMin: 0, yMax: 1, title: "accuracy per class" }), r.perClassAccuracy.length);
      confusion?.set(confusionOption(r.confusionMatrix.map(Number), r.numClasses, labels), r.confusionMatrix.length);
    } catch (err) {
      result.replaceChildren(errorBox(describeError(err)));
    } finally {
      evalButton.disabled = false;
    }
  });

  const layers = h("div", { class: "layers", id: "bn-layers" });
  root.append(
    h("h2", { class: "section" }, `${v.modelName} v${v.version}`),
    h("div", { class: "grid-2" },
      h("section", { class: "card" }, h("h2", {}, "Version"), h("dl", { class: "facts" },
        ...facts(v).flatMap(([k, val]) => [h("dt", {}, k), h("dd", {}, val)]))),
      h("section", { class: "card" }, h("h2", {}, "Evaluate"),
        h("div", { class: "form-row" }, field("data set", dataset), field("split", split), field("limit", limit), evalButton),
        result, perClassEl)),
    h("section", { class: "card" }, h("h2", {}, "Confusion matrix"), confusionEl),
    h("section", { class: "card" }, h("h2", {}, "BatchNorm parameters per layer"),
      h("p", { class: "muted" }, "γ and β (learned), running mean and variance (kept during training), one bar per unit."),
      layers));
  perClass = new Chart(perClassEl, signal);
  confusion = new Chart(confusionEl, signal);

  // --- per-layer parameters, from Inspect ----------------------------------------
  if (!(v.network?.useBatchnorm ?? true)) {
    layers.append(h("p", { class: "muted" }, "This network has no BatchNorm layers."));
    return;
  }
  try {
    const ins = await inference.inspect({
      network: { case: "model", value: ref },
      input: { case: "randomNormalRows", value: 2 },
      bins: 10,
    }, { signal });
    for (const l of ins.layers) {
      const units = Array.from({ length: l.gamma.length }, (_, i) => String(i + 1));
      const a = h("div", { class: "chart small" });
      const b = h("div", { class: "chart small" });
      layers.append(h("div", { class: "layer-row", "data-layer": l.layer }, h("h3", {}, `layer ${l.layer}`), h("div", { class: "grid-2" }, a, b)));
      new Chart(a, signal).set(barsOption(units, [
        { name: "γ", values: l.gamma, color: COLORS.bn }, { name: "β", values: l.beta, color: COLORS.plain }]), l.gamma.length * 2);
      new Chart(b, signal).set(barsOption(units, [
        { name: "running mean", values: l.runningMean, color: COLORS.validation },
        { name: "running var", values: l.runningVar, color: COLORS.loss }]), l.runningMean.length * 2);
    }
  } catch (err) {
    layers.append(errorBox(`Inspect: ${describeError(err)}`));
  }
}
