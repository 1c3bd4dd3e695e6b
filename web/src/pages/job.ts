// One job: its configuration and its per-epoch curves (train loss, train
// accuracy, validation accuracy), live while it runs.
import type { Job } from "@gen/bnserve/v1/training_service_pb";
import { Activation, OptimizerType, WeightInit_Kind } from "@gen/bnserve/v1/types_pb";
import { training } from "../api";
import { Chart, COLORS, countPoints, type Curve, curvesOption } from "../charts";
import {
  follow, hasValidation, isActive, stateName, trainAccuracy, usesBatchnorm, validationAccuracy,
} from "../jobs_common";
import type { PageContext } from "../main";
import { h } from "../ui";

function describe(job: Job): [string, string][] {
  const r = job.request;
  const n = r?.network;
  const init = n?.weightInit;
  const data = r?.trainData?.source;
  return [
    ["model", job.modelVersion ? `${job.modelName} v${job.modelVersion}` : job.modelName],
    ["state", stateName(job.state) + (job.reason ? ` (${job.reason})` : "")],
    ["network", n ? `${n.inputSize || "auto"}-${n.hiddenSizes.join("-")}-${n.outputSize || 10}` : "–"],
    ["activation", Activation[n?.activation ?? 0] ?? "–"],
    ["BatchNorm", usesBatchnorm(job) ? "on" : "off"],
    ["weight init", init ? (init.kind === WeightInit_Kind.STD ? `N(0, ${init.std}²)` : WeightInit_Kind[init.kind]) : "–"],
    ["optimizer", `${OptimizerType[r?.optimizer?.type ?? 0]} lr ${r?.optimizer?.learningRate ?? "default"}`],
    ["batch", String(r?.batchSize || 100)],
    ["data", data?.case === "builtin" ? `${data.value.name} (${data.value.limit || "all"})` : data?.case ?? "–"],
    ["created by", job.createdBy || "–"],
    ["training time", `${job.epochs.reduce((t, e) => t + e.seconds, 0).toFixed(1)} s`],
  ];
}

export async function render(ctx: PageContext): Promise<void> {
  const { root, signal } = ctx;
  const jobId = ctx.params[0] ?? "";
  const info = h("dl", { class: "facts" });
  const accEl = h("div", { class: "chart", id: "job-accuracy" });
  const lossEl = h("div", { class: "chart", id: "job-loss" });
  const cancel = h("button", { type: "button", hidden: true }, "Cancel");
  root.append(
    h("p", {}, h("a", { href: "#/jobs" }, "← all jobs")),
    h("h1", {}, "Job ", h("code", {}, jobId), " ", cancel),
    h("div", { class: "grid-2" },
      h("section", { class: "card" }, h("h2", {}, "Accuracy"), accEl),
      h("section", { class: "card" }, h("h2", {}, "Training loss"), lossEl)),
    h("section", { class: "card" }, h("h2", {}, "Configuration"), info));
  const acc = new Chart(accEl, signal);
  const loss = new Chart(lossEl, signal);

  const job = await training.getJob({ jobId }, { signal });
  cancel.addEventListener("click", () => {
    training.cancelJob({ jobId }, { signal }).then((j) => { Object.assign(job, j); draw(); }, ctx.fail);
  });

  function draw(): void {
    info.replaceChildren(...describe(job).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    cancel.hidden = !isActive(job.state);
    const curves: Curve[] = [trainAccuracy(job, COLORS.bn, "train accuracy")];
    if (hasValidation(job)) curves.push(validationAccuracy(job, COLORS.validation, "validation accuracy"));
    acc.set(curvesOption(curves, { yName: "accuracy", yMin: 0, yMax: 1 }), countPoints(curves));
    const l: Curve[] = [{ name: "train loss", color: COLORS.loss, points: job.epochs.map((e) => [e.epoch, e.trainLoss]) }];
    loss.set(curvesOption(l, { yName: "loss", legend: false }), countPoints(l));
  }
  draw();
  if (isActive(job.state)) await follow(job, signal, draw, ctx.fail);
}
