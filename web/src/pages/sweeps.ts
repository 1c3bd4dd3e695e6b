// Sweeps: the book's figure 6-19, one panel per weight scale with the
// training accuracy of the BatchNorm network against the plain one, live.
import type { Sweep, SweepEvent, SweepPoint } from "@gen/bnserve/v1/training_service_pb";
import { JobState } from "@gen/bnserve/v1/training_service_pb";
import { isAuthError, training } from "../api";
import { Chart, countPoints, type Curve, curvesOption } from "../charts";
import { bnColor, isActive, stateName } from "../jobs_common";
import type { PageContext } from "../main";
import { h, pct, sci } from "../ui";

const POLL_MS = 2000;

function applySweepEvent(sweep: Sweep, ev: SweepEvent): void {
  if (ev.finished) {
    Object.assign(sweep, ev.finished);
    return;
  }
  const p = sweep.points[ev.point];
  const e = ev.jobEvent?.event;
  if (!p || !e) return;
  if (e.case === "state") p.state = e.value;
  if (e.case === "epoch" && !p.epochs.some((m) => m.epoch === e.value.epoch)) p.epochs.push(e.value);
  if (e.case === "finished") {
    p.state = e.value.state;
    p.epochs = e.value.epochs;
    p.modelVersion = e.value.modelVersion;
    p.reason = e.value.reason;
  }
  sweep.finishedPoints = sweep.points.filter((q) => !isActive(q.state)).length;
}

// Points grouped by weight scale, in the grid's order.
function panels(sweep: Sweep): [number, SweepPoint[]][] {
  const by = new Map<number, SweepPoint[]>();
  for (const p of sweep.points) {
    const list = by.get(p.weightInitStd) ?? [];
    list.push(p);
    by.set(p.weightInitStd, list);
  }
  return [...by.entries()];
}

function curve(p: SweepPoint): Curve {
  return {
    name: p.useBatchnorm ? "BatchNorm" : "plain",
    color: bnColor(p.useBatchnorm),
    dashed: !p.useBatchnorm,
    points: p.epochs.map((e) => [e.epoch, e.trainAccuracy]),
  };
}

async function renderList(ctx: PageContext, list: HTMLElement): Promise<Sweep | undefined> {
  const res = await training.listSweeps({ pageSize: 50 }, { signal: ctx.signal });
  list.replaceChildren(...res.sweeps.map((s) => h("li", {},
    h("a", { href: `#/sweeps/${encodeURIComponent(s.sweepId)}` }, s.sweepId), " ",
    h("span", { class: "muted" }, `${s.finishedPoints}/${s.points.length} finished · ${s.request?.description ?? ""}`))));
  if (res.sweeps.length === 0) list.append(h("li", { class: "muted" }, "No sweeps yet: start one on the Jobs page."));
  return res.sweeps[0];
}

export async function render(ctx: PageContext): Promise<void> {
  const { root, signal } = ctx;
  const list = h("ul", { class: "sweep-list" });
  const title = h("h2", {});
  const progress = h("p", { class: "muted", id: "sweep-progress" });
  const grid = h("div", { class: "sweep-grid", id: "sweep-grid" });
  const key = h("p", { class: "key" },
    h("span", { class: "swatch bn" }), "with BatchNorm ", h("span", { class: "swatch plain" }), "without (dashed)",
    h("span", { class: "muted" }, " · training accuracy per epoch"));
  const table = h("table", { class: "jobs", id: "sweep-table" });
  const cancel = h("button", { type: "button", hidden: true }, "Cancel sweep");
  root.append(h("h1", {}, "Sweeps"),
    h("section", { class: "card" }, title, progress, key, cancel, grid),
    h("section", { class: "card" }, h("h2", {}, "Final accuracy"), table),
    h("section", { class: "card" }, h("h2", {}, "All sweeps"), list));

  const newest = await renderList(ctx, list);
  const sweepId = ctx.params[0] ?? newest?.sweepId;
  if (!sweepId) {
    title.textContent = "No sweep yet";
    return;
  }
  const sweep = await training.getSweep({ sweepId }, { signal });
  title.replaceChildren("Sweep ", h("code", {}, sweep.sweepId));
  cancel.addEventListener("click", () => {
    training.cancelSweep({ sweepId }, { signal }).then((s) => { Object.assign(sweep, s); draw(); }, ctx.fail);
  });

  const charts = new Map<number, Chart>();
  for (const [std] of panels(sweep)) {
    const el = h("div", { class: "chart small" });
    grid.append(h("div", { class: "sweep-panel", "data-std": std }, el));
    charts.set(std, new Chart(el, signal));
  }

  let pending = false;
  function update(): void {
    if (pending || signal.aborted) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }

  function draw(): void {
    const active = sweep.points.some((p) => isActive(p.state));
    progress.textContent = `${sweep.finishedPoints} of ${sweep.points.length} jobs finished` +
      (sweep.request?.description ? ` · ${sweep.request.description}` : "");
    cancel.hidden = !active;
    const rows = [h("tr", {}, h("th", {}, "weight std"), h("th", {}, "BatchNorm"), h("th", {}, "plain"))];
    for (const [std, points] of panels(sweep)) {
      const curves = points.map(curve);
      charts.get(std)?.set(curvesOption(curves, {
        title: `W std = ${sci(std)}`, yMin: 0, yMax: 1, legend: false, compact: true,
      }), countPoints(curves));
      const cell = (bn: boolean) => {
        const p = points.find((q) => q.useBatchnorm === bn);
        if (!p) return h("td", {}, "–");
        const last = p.epochs.at(-1);
        return h("td", { title: p.reason }, last ? pct(last.trainAccuracy) : "–",
          p.state === JobState.SUCCEEDED ? "" : h("small", { class: "muted" }, ` ${stateName(p.state)}`));
      };
      rows.push(h("tr", {}, h("td", {}, sci(std)), cell(true), cell(false)));
    }
    table.replaceChildren(...rows);
    grid.dataset.finished = String(sweep.finishedPoints);
  }
  draw();
  if (!sweep.points.some((p) => isActive(p.state))) return;

  try {
    for await (const ev of training.watchSweep({ sweepId }, { signal })) {
      applySweepEvent(sweep, ev);
      update();
    }
  } catch (err) {
    if (signal.aborted) return;
    if (isAuthError(err)) throw err;
    // Without the stream, poll the sweep until every job has ended.
    while (!signal.aborted && sweep.points.some((p) => isActive(p.state))) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      Object.assign(sweep, await training.getSweep({ sweepId }, { signal }));
      update();
    }
  }
  await renderList(ctx, list);  // its counts, now final
}
