// Loads onnxruntime-node from where scripts/setup.sh installs it
// (<repo>/var/onnx-tools/node_modules, from tests/onnx/package.json and its
// lock), or from BNSERVE_ONNX_TOOLS when set. Exits with status 2 and says
// how to install it when it is missing: a test that needs ONNX Runtime must
// fail without it, never skip.
'use strict';

const path = require('path');

const dir = process.env.BNSERVE_ONNX_TOOLS ||
    path.join(__dirname, '..', '..', 'var', 'onnx-tools');

function load() {
  try {
    return require(path.join(dir, 'node_modules', 'onnxruntime-node'));
  } catch (error) {
    console.error(`onnxruntime-node is not installed in ${dir} (${error.message}).`);
    console.error('Install it with scripts/setup.sh (make setup), which runs npm ci there from ' +
                  'tests/onnx/package.json with ONNXRUNTIME_NODE_INSTALL=skip.');
    process.exit(2);
  }
}

// A session on one thread, sequential, all graph optimizations (ORT's default).
async function createSession(ort, modelPath) {
  return ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

module.exports = { load, createSession, dir };
