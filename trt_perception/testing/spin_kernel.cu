// One thread that keeps the GPU busy for `ns` nanoseconds of the global timer: the stand-in for a
// network's run time in ReplayRunner (trt_perception/testing/stand_in_network.py).
extern "C" __global__ void spin(unsigned long long ns) {
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns);
}
