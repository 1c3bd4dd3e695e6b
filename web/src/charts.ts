// ECharts, with only the chart types the pages draw, and a chart handle that
// follows its container's size and goes away with its page.
import { BarChart, HeatmapChart, LineChart } from "echarts/charts";
import {
  GridComponent, LegendComponent, TitleComponent, TooltipComponent, VisualMapComponent,
} from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([LineChart, BarChart, HeatmapChart, GridComponent, LegendComponent, TitleComponent,
  TooltipComponent, VisualMapComponent, CanvasRenderer]);

export type Option = echarts.EChartsCoreOption;

export const COLORS = {
  bn: "#2f6fde",
  plain: "#e0662f",
  loss: "#6b7280",
  validation: "#16a34a",
};
export const PALETTE = ["#2f6fde", "#e0662f", "#16a34a", "#9333ea", "#db2777", "#0891b2",
  "#ca8a04", "#4b5563"];

// A chart in `el`, disposed when `signal` aborts. `el.dataset.points` counts
// the data points drawn (the browser test reads it).
export class Chart {
  private readonly chart: echarts.ECharts;

  constructor(readonly el: HTMLElement, signal: AbortSignal) {
    this.chart = echarts.init(el, null, { renderer: "canvas" });
    const observer = new ResizeObserver(() => this.chart.resize());
    observer.observe(el);
    signal.addEventListener("abort", () => {
      observer.disconnect();
      this.chart.dispose();
    });
  }

  set(option: Option, points: number): void {
    this.chart.setOption(option, { notMerge: true, lazyUpdate: true });
    this.el.dataset.points = String(points);
  }
}

// Per-epoch curves: each series is [epoch, value] pairs.
export interface Curve {
  name: string;
  points: [number, number][];
  color?: string;
  dashed?: boolean;
}

export function curvesOption(curves: Curve[], opts: {
  title?: string; yName?: string; yMax?: number; yMin?: number; legend?: boolean; compact?: boolean;
} = {}): Option {
  const compact = opts.compact ?? false;
  return {
    animation: false,
    title: opts.title ? { text: opts.title, left: "center", top: 2,
      textStyle: { fontSize: compact ? 12 : 14, fontWeight: 600 } } : undefined,
    tooltip: compact ? undefined : { trigger: "axis" },
    legend: opts.legend === false ? undefined : { bottom: 0, type: "scroll" },
    grid: compact
      ? { left: 34, right: 8, top: 26, bottom: 22 }
      : { left: 50, right: 50, top: opts.title ? 36 : 24, bottom: opts.legend === false ? 30 : 46 },
    xAxis: { type: "value", name: compact ? undefined : "epoch", nameLocation: "end", nameGap: 8,
      minInterval: 1, min: 1, max: (v: { max: number }) => Math.max(2, v.max),
      axisLabel: { fontSize: compact ? 9 : 11 } },
    yAxis: { type: "value", name: compact ? undefined : opts.yName, min: opts.yMin, max: opts.yMax,
      axisLabel: { fontSize: compact ? 9 : 11 } },
    series: curves.map((c) => ({
      name: c.name,
      type: "line",
      data: c.points,
      showSymbol: c.points.length < 30,
      symbolSize: compact ? 3 : 5,
      lineStyle: { width: compact ? 1.5 : 2, type: c.dashed ? "dashed" : "solid" },
      itemStyle: c.color ? { color: c.color } : undefined,
      color: c.color,
    })),
  };
}

export function countPoints(curves: Curve[]): number {
  return curves.reduce((n, c) => n + c.points.length, 0);
}

// A histogram as bars: counts over [min, max] in equal bins.
export function histogramOption(counts: number[], min: number, max: number, opts: {
  title?: string; color?: string; xMin?: number; xMax?: number;
} = {}): Option {
  const w = counts.length > 0 ? (max - min) / counts.length : 0;
  return {
    animation: false,
    title: opts.title ? { text: opts.title, left: "center", top: 2,
      textStyle: { fontSize: 12, fontWeight: 600 } } : undefined,
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    grid: { left: 40, right: 10, top: opts.title ? 28 : 10, bottom: 24 },
    xAxis: { type: "value", min: opts.xMin ?? min, max: opts.xMax ?? max,
      axisLabel: { fontSize: 9 } },
    yAxis: { type: "value", axisLabel: { fontSize: 9 } },
    series: [{
      type: "bar",
      barWidth: "100%",
      barCategoryGap: 0,
      data: counts.map((c, i) => [min + (i + 0.5) * w, c]),
      itemStyle: { color: opts.color ?? COLORS.bn },
    }],
  };
}

// Bars over a category axis (class probabilities, per-class accuracy,
// per-unit gamma ...).
export function barsOption(labels: string[], series: { name: string; values: number[]; color?: string }[],
  opts: { yMax?: number; yMin?: number; title?: string; highlight?: number } = {}): Option {
  return {
    animation: false,
    title: opts.title ? { text: opts.title, left: "center", top: 2,
      textStyle: { fontSize: 12, fontWeight: 600 } } : undefined,
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: series.length > 1 ? { bottom: 0 } : undefined,
    grid: { left: 44, right: 12, top: opts.title ? 30 : 12, bottom: series.length > 1 ? 44 : 24 },
    xAxis: { type: "category", data: labels, axisLabel: { fontSize: 10 } },
    yAxis: { type: "value", min: opts.yMin, max: opts.yMax, axisLabel: { fontSize: 10 } },
    series: series.map((s) => ({
      name: s.name,
      type: "bar",
      data: s.values.map((v, i) => (opts.highlight === i
        ? { value: v, itemStyle: { color: "#16a34a" } } : v)),
      itemStyle: s.color ? { color: s.color } : undefined,
    })),
  };
}

// A num_classes x num_classes confusion matrix (row = true class).
export function confusionOption(matrix: number[], n: number, labels: string[]): Option {
  const data: [number, number, number][] = [];
  let max = 1;
  for (let t = 0; t < n; t++) {
    for (let p = 0; p < n; p++) {
      const v = matrix[t * n + p] ?? 0;
      data.push([p, t, v]);
      max = Math.max(max, v);
    }
  }
  return {
    animation: false,
    tooltip: { formatter: (x: { value: [number, number, number] }) =>
      `true ${labels[x.value[1]]}, predicted ${labels[x.value[0]]}: ${x.value[2]}` },
    grid: { left: 56, right: 90, top: 10, bottom: 44 },
    xAxis: { type: "category", data: labels, name: "predicted", nameLocation: "middle", nameGap: 26,
      splitArea: { show: true } },
    yAxis: { type: "category", data: labels, name: "true", nameLocation: "middle", nameGap: 40,
      inverse: true, splitArea: { show: true } },
    visualMap: { min: 0, max, calculable: true, orient: "vertical", right: 0, top: "middle",
      itemHeight: 160, inRange: { color: ["#f8fafc", "#93c5fd", "#1d4ed8"] } },
    series: [{ type: "heatmap", data, label: { show: true, fontSize: 10 } }],
  };
}
