// Turns a drawing into an MNIST-like 28x28 image, as the data set's digits
// were made: the ink's bounding box scaled (keeping its aspect ratio) to fit
// 20x20, then placed in 28x28 so that its centre of mass is at the centre.
// Values in [0, 1], 1 = full ink, row-major.

export const SIZE = 28;
const BOX = 20;

// `alpha`: the drawing's ink per pixel (0..255), width x height, row-major.
// Returns null when nothing is drawn.
export function toMnist(alpha: Uint8ClampedArray | number[], width: number, height: number): Float32Array | null {
  let minX = width, minY = height, maxX = -1, maxY = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (alpha[y * width + x] > 0) {
        if (x < minX) minX = x;
        if (x > maxX) maxX = x;
        if (y < minY) minY = y;
        if (y > maxY) maxY = y;
      }
    }
  }
  if (maxX < 0) return null;
  const bw = maxX - minX + 1;
  const bh = maxY - minY + 1;
  const scale = BOX / Math.max(bw, bh);
  const w = Math.max(1, Math.round(bw * scale));
  const hgt = Math.max(1, Math.round(bh * scale));

  // Area-average downscaling: each source pixel adds its share to the
  // target pixel it falls in.
  const box = new Float32Array(w * hgt);
  const share = scale * scale;
  for (let y = minY; y <= maxY; y++) {
    const ty = Math.min(hgt - 1, Math.floor((y - minY) * scale));
    for (let x = minX; x <= maxX; x++) {
      const a = alpha[y * width + x];
      if (a === 0) continue;
      const tx = Math.min(w - 1, Math.floor((x - minX) * scale));
      box[ty * w + tx] += (a / 255) * share;
    }
  }

  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < hgt; y++) {
    for (let x = 0; x < w; x++) {
      const v = Math.min(1, box[y * w + x]);
      box[y * w + x] = v;
      mass += v;
      mx += v * (x + 0.5);
      my += v * (y + 0.5);
    }
  }
  const ox = Math.round(SIZE / 2 - mx / mass);
  const oy = Math.round(SIZE / 2 - my / mass);
  const out = new Float32Array(SIZE * SIZE);
  for (let y = 0; y < hgt; y++) {
    for (let x = 0; x < w; x++) {
      const tx = x + ox;
      const ty = y + oy;
      if (tx >= 0 && tx < SIZE && ty >= 0 && ty < SIZE) out[ty * SIZE + tx] = box[y * w + x];
    }
  }
  return out;
}
