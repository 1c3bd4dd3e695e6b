// What the job pages share: the book's experiment as a TrainRequest, job
// streams, and a job's curves.
import { create } from "@bufbuild/protobuf";
import { Activation, OptimizerType, Split, WeightInit_Kind } from "@gen/bnserve/v1/types_pb";
import {
  type Job, type JobEvent, JobState, type TrainRequest, TrainRequestSchema,
} from "@gen/bnserve/v1/training_service_pb";
import { training } from "./api";
import { COLORS, type Curve } from "./charts";

// The book's section 6.3.2: 784-100x5-10, ReLU, weights N(0, std^2), SGD
// lr 0.01, batch 100, on 1000 training images, 20 epochs.
export interface BookSettings {
  epochs: number;
  limit: number;
  weightStd: number;
  dataset: string;
}

export const BOOK_DEFAULTS: BookSettings = {
  epochs: 20, limit: 1000, weightStd: 0.05, dataset: "mnist-digits",
};

// With `validate`, each epoch is also scored on 1000 test images.
export function bookRequest(s: BookSettings, modelName: string, useBatchnorm: boolean,
  validate = false): TrainRequest {
  return create(TrainRequestSchema, {
    modelName,
    network: {
      hiddenSizes: [100, 100, 100, 100, 100],
      activation: Activation.RELU,
      weightInit: { kind: WeightInit_Kind.STD, std: s.weightStd },
      useBatchnorm,
    },
    optimizer: { type: OptimizerType.SGD, learningRate: 0.01 },
    trainData: { source: { case: "builtin", value: { name: s.dataset, split: Split.TRAIN, limit: s.limit } } },
    validationData: validate
      ? { source: { case: "builtin", value: { name: s.dataset, split: Split.TEST, limit: 1000 } } }
      : undefined,
    epochs: s.epochs,
    batchSize: 100,
    description: `the book's BatchNorm experiment, ${useBatchnorm ? "with" : "without"} BatchNorm`,
  });
}

// numpy.logspace(start, stop, num)
export function logspace(start: number, stop: number, num: number): number[] {
  return Array.from({ length: num }, (_, i) => 10 ** (start + ((stop - start) * i) / (num - 1)));
}

export function isActive(state: JobState): boolean {
  return state === JobState.QUEUED || state === JobState.RUNNING;
}

export function stateName(state: JobState): string {
  return (JobState[state] ?? "UNKNOWN").toLowerCase();
}

// Applies one WatchJob event to the job, in place.
export function applyEvent(job: Job, ev: JobEvent): void {
  switch (ev.event.case) {
    case "state":
      job.state = ev.event.value;
      break;
    case "epoch": {
      const m = ev.event.value;
      if (!job.epochs.some((e) => e.epoch === m.epoch)) job.epochs.push(m);
      break;
    }
    case "finished":
      Object.assign(job, ev.event.value);
      break;
  }
}

// Streams `job`'s events into it (calling onChange after each) until it ends
// or `signal` aborts. Errors go to onError, an abort is silent.
export async function follow(job: Job, signal: AbortSignal, onChange: () => void,
  onError: (err: unknown) => void): Promise<void> {
  try {
    for await (const ev of training.watchJob({ jobId: job.jobId }, { signal })) {
      applyEvent(job, ev);
      onChange();
    }
  } catch (err) {
    if (!signal.aborted) onError(err);
  }
}

export function usesBatchnorm(job: Job): boolean {
  return job.request?.network?.useBatchnorm ?? true;
}

export function jobLabel(job: Job): string {
  const std = job.request?.network?.weightInit;
  const init = std?.kind === WeightInit_Kind.STD ? ` std ${std.std}` : "";
  return `${job.jobId} ${job.modelName} (${usesBatchnorm(job) ? "BN" : "no BN"}${init})`;
}

export function trainAccuracy(job: Job, color?: string, name = jobLabel(job)): Curve {
  return { name, color, points: job.epochs.map((e) => [e.epoch, e.trainAccuracy]) };
}

export function hasValidation(job: Job): boolean {
  return job.request?.validationData?.source.case !== undefined;
}

export function validationAccuracy(job: Job, color?: string, name = `${jobLabel(job)} validation`): Curve {
  return { name, color, dashed: true, points: job.epochs.map((e) => [e.epoch, e.validationAccuracy]) };
}

export function bnColor(useBatchnorm: boolean): string {
  return useBatchnorm ? COLORS.bn : COLORS.plain;
}

export { Split };
