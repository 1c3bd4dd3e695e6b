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
// The cost: freed memory below 32 MiB stays with the process (up to 512 MiB
// of free heap top per malloc arena) instead of going back to the kernel; it
// is reused by later calls, and it is not counted by --max_job_memory_mb.
//
// Call once, early in main(), before threads start. Not thread-safe. No
// effect but a warning on a C library without mallopt's options.
#ifndef BNSERVE_SERVER_ALLOCATOR_TUNING_H_
#define BNSERVE_SERVER_ALLOCATOR_TUNING_H_

namespace bnserve {

// Returns false, with a warning naming it, if the C library refused a
// setting (the others are still applied).
bool KeepFreedMemoryForReuse();

}  // namespace bnserve

#endif  // BNSERVE_SERVER_ALLOCATOR_TUNING_H_
