// ONNX Runtime's inference time for an exported bnserve model, to set next
// to bnserve_bench's BM_SeedNetInference* rows: onnxruntime-node (CPU, one
// intra-op and one inter-op thread, sequential, all graph optimizations) on
// random rows uniform in [0, 1) at each batch size.
//
//   build/client/bnctl export digits --format onnx --fold-batchnorm --out var/digits-folded.onnx
//   node bench/onnx/ort_bench.js var/digits-folded.onnx [--batches 1,256,1000] [--seconds 2]
//
// For each batch: warm-up runs, then rounds of timed session.run calls until
// --seconds have passed; prints the median and the best round's time per
// call in microseconds, and rows per second at the median. session.run is
// asynchronous in Node: each call's time includes the binding's hand-off to
// ORT's worker and the promise's resolution, which batch 1 feels most.
// onnxruntime-node comes from scripts/setup.sh (tests/onnx/onnxruntime.js).
'use strict';

const { load, createSession } = require('../../tests/onnx/onnxruntime.js');

function parseArgs(argv) {
  const args = { model: null, batches: [1, 256, 1000], seconds: 2 };
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i] === '--batches') args.batches = argv[++i].split(',').map(Number);
    else if (argv[i] === '--seconds') args.seconds = Number(argv[++i]);
    else args.model = argv[i];
  }
  if (!args.model || args.batches.some((b) => !(b > 0)) || !(args.seconds > 0)) {
    console.error('usage: ort_bench.js MODEL.onnx [--batches 1,256,1000] [--seconds 2]');
    process.exit(1);
  }
  return args;
}

// Uniform [0, 1) from a fixed-seed xorshift, so every run sees the same rows.
function randomRows(rows, features, seed) {
  const data = new Float32Array(rows * features);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; ++i) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    data[i] = s / 4294967296;
  }
  return data;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const ort = load();
  const session = await createSession(ort, args.model);
  const features = session.inputMetadata[0].shape[1];
  console.log(`onnxruntime-node ${ort.env.versions.node || ''} ${args.model}: input ` +
              `[N, ${features}], 1 thread`);
  console.log('batch    median_us      best_us     rows/s');
  for (const batch of args.batches) {
    const input = new ort.Tensor('float32', randomRows(batch, features, 7 + batch),
                                 [batch, features]);
    const feeds = { input };
    for (let i = 0; i < 20; ++i) await session.run(feeds);
    // Rounds of calls long enough to time (~20 ms each).
    const start = process.hrtime.bigint();
    let calls = 0;
    while (Number(process.hrtime.bigint() - start) < 2e7) { await session.run(feeds); ++calls; }
    const perRound = Math.max(1, calls);
    const rounds = [];
    const deadline = process.hrtime.bigint() + BigInt(Math.round(args.seconds * 1e9));
    while (process.hrtime.bigint() < deadline || rounds.length < 5) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < perRound; ++i) await session.run(feeds);
      rounds.push(Number(process.hrtime.bigint() - t0) / 1e3 / perRound);
    }
    rounds.sort((a, b) => a - b);
    const median = rounds[Math.floor(rounds.length / 2)];
    console.log(`${String(batch).padStart(5)} ${median.toFixed(1).padStart(12)} ` +
                `${rounds[0].toFixed(1).padStart(12)} ${Math.round(batch * 1e6 / median)
                    .toString().padStart(10)}`);
  }
}

main().catch((error) => {
  console.error(`ort_bench: ${error.stack || error}`);
  process.exit(1);
});
