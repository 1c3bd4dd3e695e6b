// KeepFreedMemoryForReuse(): the process's malloc policy for serving.
//
// glibc serves an allocation above its mmap threshold (128 KiB at first,
// raised dynamically) with a fresh mmap and unmaps it on free, and returns
// the free top of a heap above its trim threshold to the kernel. A batch-256
// Predict moves 800 KB requests through gRPC's slices and the parsed
// message, so with the defaults every call page-faults its buffers in again
// (measured: about 75 minor faults per call on the server, about as many on
// an Echo of the same payload). This raises both thresholds, and the padding
// a heap grows by, so that freed buffers stay in the heap and are reused by
// the next call: resident memory stays at its high-water mark instead of
// shrinking after each request.
//
// Call once, early in main(), before threads start. Not thread-safe. No
// effect but a warning on a C library without mallopt's options.
#ifndef BNSERVE_SERVER_ALLOCATOR_TUNING_H_
#define BNSERVE_SERVER_ALLOCATOR_TUNING_H_

namespace bnserve {

// Returns false (and changes nothing more) if the C library refused.
bool KeepFreedMemoryForReuse();

}  // namespace bnserve

#endif  // BNSERVE_SERVER_ALLOCATOR_TUNING_H_
