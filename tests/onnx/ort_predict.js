// Runs an exported bnserve ONNX model in ONNX Runtime (onnxruntime-node, CPU,
// one thread) on rows read from a file and writes the probabilities.
//
//   node tests/onnx/ort_predict.js MODEL.onnx ROWS.f32 ROWS FEATURES OUT.f32
//
// ROWS.f32: ROWS x FEATURES little-endian float32, row-major; OUT.f32 gets
// the output "probabilities" the same way. Prints one JSON line: the input
// and output names and the output's dims. Exit status 1 on any error (a
// model ONNX Runtime refuses, other names than "input" / "probabilities"),
// 2 when onnxruntime-node is missing.
'use strict';

const fs = require('fs');
const { load, createSession } = require('./onnxruntime.js');

async function main() {
  const [modelPath, rowsPath, rowsText, featuresText, outPath] = process.argv.slice(2);
  if (!outPath) {
    console.error('usage: ort_predict.js MODEL.onnx ROWS.f32 ROWS FEATURES OUT.f32');
    process.exit(1);
  }
  const rows = Number(rowsText);
  const features = Number(featuresText);
  const ort = load();
  const session = await createSession(ort, modelPath);
  if (session.inputNames.join() !== 'input' || session.outputNames.join() !== 'probabilities') {
    throw new Error(`expected input "input" and output "probabilities", got inputs ` +
                    `${JSON.stringify(session.inputNames)}, outputs ` +
                    `${JSON.stringify(session.outputNames)}`);
  }
  const bytes = fs.readFileSync(rowsPath);
  if (bytes.length !== rows * features * 4) {
    throw new Error(`${rowsPath} has ${bytes.length} bytes, not ${rows} x ${features} floats`);
  }
  const data = new Float32Array(bytes.buffer, bytes.byteOffset, rows * features);
  const input = new ort.Tensor('float32', Float32Array.from(data), [rows, features]);
  const result = await session.run({ input });
  const probabilities = result.probabilities;
  if (probabilities.type !== 'float32') throw new Error(`output type ${probabilities.type}`);
  const out = probabilities.data;
  fs.writeFileSync(outPath, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  console.log(JSON.stringify({
    inputs: session.inputNames,
    outputs: session.outputNames,
    dims: probabilities.dims,
  }));
}

main().catch((error) => {
  console.error(`ort_predict: ${error.stack || error}`);
  process.exit(1);
});
