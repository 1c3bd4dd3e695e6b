// Jobs: every training job with its state and progress, live; the book's
// experiment and sweep one click away; selected jobs' curves overlaid.
import type { Job } from "@gen/bnserve/v1/training_service_pb";
import { isAuthError, training } from "../api";
import { Chart, countPoints, type Curve, curvesOption, PALETTE } from "../charts";
import {
  BOOK_DEFAULTS, bookRequest, follow, hasValidation, isActive, logspace, stateName,
  trainAccuracy, usesBatchnorm, validationAccuracy,
} from "../jobs_common";
import type { PageContext } from "../main";
import { field, h, numberInput, pct, select } from "../ui";

const POLL_MS = 2000;
// Browsers open at most 6 HTTP/1.1 connections per origin, and each stream
// holds one: only selected running jobs are streamed, the rest polled.
const MAX_STREAMS = 4;
const SELECTED_KEY = "bnserve.selectedJobs";

function loadSelection(): Set<string> {
  try {
    return new Set(JSON.parse(localStorage.getItem(SELECTED_KEY) ?? "[]") as string[]);
  } catch {
    return new Set();
  }
}

export function render(ctx: PageContext): void {
  const { root, signal } = ctx;
  const jobs = new Map<string, Job>();
  const selected = loadSelection();
  const streaming = new Set<string>();
  const saveSelection = () => localStorage.setItem(SELECTED_KEY, JSON.stringify([...selected]));

  // --- the book's experiment ------------------------------------------------
  const epochs = numberInput("exp-epochs", BOOK_DEFAULTS.epochs, { min: 1, max: 200 });
  const limit = numberInput("exp-limit", BOOK_DEFAULTS.limit, { min: 100, step: 100 });
  const weightStd = numberInput("exp-std", BOOK_DEFAULTS.weightStd, { min: 0, step: "any" });
  const dataset = select("exp-dataset", [["mnist-digits", "mnist-digits"], ["fashion-mnist", "fashion-mnist"]]);
  const status = h("span", { class: "muted", id: "exp-status" });
  const settings = () => ({
    epochs: epochs.valueAsNumber || BOOK_DEFAULTS.epochs,
    limit: limit.valueAsNumber || BOOK_DEFAULTS.limit,
    weightStd: weightStd.valueAsNumber || BOOK_DEFAULTS.weightStd,
    dataset: dataset.value,
  });

  async function startExperiment(): Promise<void> {
    status.textContent = "submitting…";
    const s = settings();
    try {
      const bn = await training.train(bookRequest(s, "book-bn", true, true), { signal });
      const plain = await training.train(bookRequest(s, "book-plain", false, true), { signal });
      for (const j of [bn, plain]) {
        jobs.set(j.jobId, j);
        selected.add(j.jobId);
      }
      saveSelection();
      status.textContent = `started ${bn.jobId} (BN) and ${plain.jobId} (plain)`;
      update();
    } catch (err) {
      status.textContent = "";
      ctx.fail(err);
    }
  }

  async function startSweep(): Promise<void> {
    status.textContent = "submitting the sweep…";
    const s = settings();
    try {
      const sweep = await training.startSweep({
        base: bookRequest(s, "book-sweep", true),
        weightInitStds: logspace(0, -4, 16),
        useBatchnorm: [true, false],
        description: `the book's figure 6-19: 16 weight scales x BatchNorm on/off, ${s.epochs} epochs`,
      }, { signal });
      location.hash = `#/sweeps/${encodeURIComponent(sweep.sweepId)}`;
    } catch (err) {
      status.textContent = "";
      ctx.fail(err);
    }
  }

  const experiment = h("section", { class: "card" },
    h("h2", {}, "The book's experiment"),
    h("p", { class: "muted" },
      "784-100×5-10 ReLU network, weights N(0, std²), SGD lr 0.01, batch 100 — once with BatchNorm and once without ",
      "(section 6.3.2; dashed: accuracy on 1000 test images), or the whole sweep over 16 weight scales (figure 6-19). ",
      "Fewer epochs run faster."),
    h("div", { class: "form-row" },
      field("epochs", epochs), field("training images", limit), field("weight std", weightStd),
      field("data set", dataset)),
    h("div", { class: "form-row" },
      h("button", { class: "primary", id: "start-experiment", type: "button", onclick: () => void startExperiment() },
        "Train BN vs plain"),
      h("button", { id: "start-sweep", type: "button", onclick: () => void startSweep() },
        "Start the sweep (16 weight scales × BN on/off)"),
      status));

  // --- overlay of the selected jobs -------------------------------------------
  const overlayEl = h("div", { class: "chart", id: "overlay" });
  const overlayHint = h("p", { class: "muted" }, "Tick jobs in the table to overlay their training accuracy.");
  const overlay = h("section", { class: "card" }, h("h2", {}, "Training accuracy"), overlayHint, overlayEl);

  // --- the table ------------------------------------------------------------
  const tbody = h("tbody", {});
  const table = h("section", { class: "card" },
    h("h2", {}, "Jobs"),
    h("table", { class: "jobs", id: "jobs-table" },
      h("thead", {}, h("tr", {},
        h("th", {}, ""), h("th", {}, "job"), h("th", {}, "model"), h("th", {}, "BN"),
        h("th", {}, "state"), h("th", {}, "progress"), h("th", {}, "train acc"),
        h("th", {}, "val acc"), h("th", {}, "by"), h("th", {}, ""))),
      tbody));

  root.append(h("h1", {}, "Jobs"), experiment, overlay, table);
  const chart = new Chart(overlayEl, signal);

  function row(job: Job): HTMLTableRowElement {
    const last = job.epochs.at(-1);
    const total = job.totalEpochs || job.request?.epochs || 0;
    const done = job.epochs.length;
    const box = h("input", { type: "checkbox", checked: selected.has(job.jobId), "aria-label": `select ${job.jobId}` });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(job.jobId); else selected.delete(job.jobId);
      saveSelection();
      update();
    });
    const cancel = isActive(job.state)
      ? h("button", { class: "small", type: "button", onclick: () => {
        training.cancelJob({ jobId: job.jobId }, { signal }).then((j) => { jobs.set(j.jobId, j); update(); }, ctx.fail);
      } }, "cancel")
      : null;
    return h("tr", { "data-job": job.jobId, "data-state": stateName(job.state) },
      h("td", {}, box),
      h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(job.jobId)}` }, job.jobId)),
      h("td", {}, job.modelVersion ? h("a", { href: `#/models/${encodeURIComponent(job.modelName)}/${job.modelVersion}` },
        `${job.modelName} v${job.modelVersion}`) : job.modelName),
      h("td", {}, usesBatchnorm(job) ? "on" : "off"),
      h("td", {}, h("span", { class: `state ${stateName(job.state)}`, title: job.reason }, stateName(job.state))),
      h("td", {}, h("div", { class: "progress", title: `${done} / ${total} epochs` },
        h("div", { style: `width: ${total ? (100 * done) / total : 0}%` })), h("small", {}, ` ${done}/${total}`)),
      h("td", {}, last ? pct(last.trainAccuracy) : "–"),
      h("td", {}, last && hasValidation(job) ? pct(last.validationAccuracy) : "–"),
      h("td", { class: "muted" }, job.createdBy),
      h("td", {}, cancel));
  }

  let pending = false;
  function update(): void {
    if (pending || signal.aborted) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  }

  function draw(): void {
    const list = [...jobs.values()].sort((a, b) => b.jobId.localeCompare(a.jobId));
    tbody.replaceChildren(...list.map(row));
    if (list.length === 0) {
      tbody.append(h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No jobs yet.")));
    }
    const chosen = list.filter((j) => selected.has(j.jobId)).reverse();
    const curves: Curve[] = [];
    chosen.forEach((j, i) => {
      const color = PALETTE[i % PALETTE.length];
      curves.push(trainAccuracy(j, color));
      if (hasValidation(j)) curves.push(validationAccuracy(j, color));
    });
    overlayHint.hidden = chosen.length > 0;
    chart.set(curvesOption(curves, { yName: "accuracy", yMin: 0, yMax: 1 }), countPoints(curves));
    overlayEl.dataset.jobs = chosen.map((j) => j.jobId).join(" ");
    // Stream the selected running jobs (the chart moves at once), a few at a time.
    for (const j of chosen) {
      if (isActive(j.state) && !streaming.has(j.jobId) && streaming.size < MAX_STREAMS) {
        streaming.add(j.jobId);
        void follow(j, signal, update, ctx.fail).finally(() => streaming.delete(j.jobId));
      }
    }
  }

  async function poll(): Promise<void> {
    while (!signal.aborted) {
      try {
        const res = await training.listJobs({ pageSize: 100 }, { signal });
        for (const j of res.jobs) {
          const known = jobs.get(j.jobId);
          if (known && streaming.has(j.jobId)) {
            // The stream updates `known` in place and may be ahead of the list.
            if (j.epochs.length >= known.epochs.length) Object.assign(known, j);
          } else {
            jobs.set(j.jobId, j);
          }
        }
        update();
      } catch (err) {
        ctx.fail(err);
        if (isAuthError(err)) return;  // until a token is saved (that reloads the page)
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
  void poll();
}
