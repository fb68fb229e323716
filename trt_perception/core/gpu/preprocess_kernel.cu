// Fused preprocessing: one camera frame (uint8, any supported encoding) -> network input tensor.
//
// One thread per output pixel: it decodes the 2x2 source pixels its bilinear sample needs (YUV ->
// RGB as OpenCV's cvtColor does, BT.601 video range, fixed point), resizes them with OpenCV's
// INTER_LINEAR fixed-point arithmetic (11-bit weights from host-made tables, rounded to uint8),
// brings the colour order to the output order, normalizes with (x * scale + bias) in float32 and
// stores float32 or float16, NCHW or NHWC. Letterbox padding pixels take `pad_value`.
// The result equals the CPU reference path (core/image.py + core/preprocess.py) bit for bit.
//
// Everything computing a pixel is __host__ __device__ so the same code can be checked on a
// machine without a GPU (test/core/test_gpu_kernel_host.py compiles it for the host).
#include <cuda_fp16.h>
#include <stdint.h>

// Source encodings; the numbers are ENCODING_IDS in trt_perception/core/gpu/preprocess_plan.py.
#define ENC_RGB8 0
#define ENC_BGR8 1
#define ENC_RGBA8 2
#define ENC_BGRA8 3
#define ENC_MONO8 4
#define ENC_MONO16_LE 5
#define ENC_MONO16_BE 6
#define ENC_YUYV 7
#define ENC_UYVY 8
#define ENC_NV12 9
#define ENC_NV21 10

// Kernel parameters, passed by value; int32/float32 fields only (the host packs them in this
// order: PARAMS_DTYPE in trt_perception/core/gpu/preprocess_plan.py).
struct PreprocessParams {
    int encoding;                 // ENC_*
    int src_pitch;                // bytes from one source row to the next (the message's step)
    int src_w, src_h;             // source size in pixels (NV12/NV21: the luma plane)
    int dst_w, dst_h;             // network input size
    int content_w, content_h;     // size of the resized image inside the input
    int pad_x, pad_y;             // its top-left corner in the input (letterbox), else 0
    int pad_value;                // uint8 value of the padding pixels
    int bgr_out;                  // 1: output channel 0 is blue
    int nhwc;                     // 1: NHWC, 0: NCHW
    int half_out;                 // 1: float16, 0: float32
    float scale[3];               // per output channel: 1 / std
    float bias[3];                // per output channel: -mean / std
};

#ifdef __CUDA_ARCH__
#define FMUL(a, b) __fmul_rn((a), (b))   // never contracted into an FMA: same rounding as numpy
#define FADD(a, b) __fadd_rn((a), (b))
#else
#define FMUL(a, b) ((a) * (b))
#define FADD(a, b) ((a) + (b))
#endif

__host__ __device__ inline int clamp_u8(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

// OpenCV's BT.601 video-range YUV -> RGB (color_yuv: ITUR_BT_601_* constants, 20-bit fixed point).
__host__ __device__ inline void yuv_to_rgb(int y, int u, int v, int rgb[3]) {
    const int cy = 1220542, cub = 2116026, cug = -409993, cvg = -852492, cvr = 1673527;
    const int half = 1 << 19;
    const int uu = u - 128, vv = v - 128;
    const int yy = (y > 16 ? y - 16 : 0) * cy;
    rgb[0] = clamp_u8((yy + half + cvr * vv) >> 20);
    rgb[1] = clamp_u8((yy + half + cvg * vv + cug * uu) >> 20);
    rgb[2] = clamp_u8((yy + half + cub * uu) >> 20);
}

// RGB (uint8 values) of source pixel (x, y), as core/image.py decodes it.
__host__ __device__ inline void load_rgb(const PreprocessParams& p, const uint8_t* __restrict__ src,
                                         int x, int y, int rgb[3]) {
    const uint8_t* row = src + (size_t)y * p.src_pitch;
    switch (p.encoding) {
    case ENC_RGB8: case ENC_BGR8: case ENC_RGBA8: case ENC_BGRA8: {
        const int bpp = (p.encoding == ENC_RGB8 || p.encoding == ENC_BGR8) ? 3 : 4;
        const uint8_t* px = row + x * bpp;
        const bool bgr = p.encoding == ENC_BGR8 || p.encoding == ENC_BGRA8;
        rgb[0] = px[bgr ? 2 : 0];
        rgb[1] = px[1];
        rgb[2] = px[bgr ? 0 : 2];
        return;
    }
    case ENC_MONO8:
        rgb[0] = rgb[1] = rgb[2] = row[x];
        return;
    case ENC_MONO16_LE: case ENC_MONO16_BE: {
        const uint8_t* px = row + 2 * x;
        const unsigned v = p.encoding == ENC_MONO16_LE ? (px[0] | (px[1] << 8)) : ((px[0] << 8) | px[1]);
        rgb[0] = rgb[1] = rgb[2] = (int)((v * 255u + 32767u) / 65535u);   // round(v / 257)
        return;
    }
    case ENC_YUYV: case ENC_UYVY: {
        const uint8_t* pair = row + (x & ~1) * 2;       // 4 bytes hold 2 pixels
        const bool yuyv = p.encoding == ENC_YUYV;
        const int luma = yuyv ? pair[(x & 1) * 2] : pair[(x & 1) * 2 + 1];
        yuv_to_rgb(luma, yuyv ? pair[1] : pair[0], yuyv ? pair[3] : pair[2], rgb);
        return;
    }
    default: {  // ENC_NV12, ENC_NV21: luma plane, then interleaved chroma at half resolution
        const uint8_t* chroma = src + (size_t)(p.src_h + (y >> 1)) * p.src_pitch + (x & ~1);
        const bool nv12 = p.encoding == ENC_NV12;
        yuv_to_rgb(row[x], nv12 ? chroma[0] : chroma[1], nv12 ? chroma[1] : chroma[0], rgb);
        return;
    }
    }
}

// Output pixel (x, y): resize (OpenCV INTER_LINEAR, uint8 fixed point), colour order,
// normalization, layout and dtype. col: per content column (x0, x1, a0, a1); row: per content
// row (y0, y1, b0, b1); weights in units of 1/2048.
__host__ __device__ inline void preprocess_pixel(const PreprocessParams& p, const uint8_t* __restrict__ src,
                                                 const int4* __restrict__ col, const int4* __restrict__ row,
                                                 void* __restrict__ dst, int x, int y) {
    int rgb[3];
    const int cx = x - p.pad_x, cy = y - p.pad_y;
    if (cx < 0 || cy < 0 || cx >= p.content_w || cy >= p.content_h) {
        rgb[0] = rgb[1] = rgb[2] = p.pad_value;
    } else {
        const int4 c = col[cx], r = row[cy];
        int p00[3], p01[3], p10[3], p11[3];
        load_rgb(p, src, c.x, r.x, p00);
        load_rgb(p, src, c.y, r.x, p01);
        load_rgb(p, src, c.x, r.y, p10);
        load_rgb(p, src, c.y, r.y, p11);
        for (int k = 0; k < 3; ++k) {
            const int h0 = p00[k] * c.z + p01[k] * c.w;     // horizontal pass, x2048
            const int h1 = p10[k] * c.z + p11[k] * c.w;
            // OpenCV's vertical pass (VResizeLinearVec_32s8u): 16-bit high products, then /4
            rgb[k] = clamp_u8(((((h0 >> 4) * r.z) >> 16) + (((h1 >> 4) * r.w) >> 16) + 2) >> 2);
        }
    }
    const size_t pixel = (size_t)y * p.dst_w + x;
    const size_t plane = (size_t)p.dst_w * p.dst_h;
    for (int k = 0; k < 3; ++k) {
        const int v = rgb[p.bgr_out ? 2 - k : k];
        const float f = FADD(FMUL((float)v, p.scale[k]), p.bias[k]);
        const size_t i = p.nhwc ? pixel * 3 + k : k * plane + pixel;
        if (p.half_out) {
            ((__half*)dst)[i] = __float2half_rn(f);
        } else {
            ((float*)dst)[i] = f;
        }
    }
}

extern "C" __global__ void preprocess_frame(const uint8_t* __restrict__ src, void* __restrict__ dst,
                                            const int4* __restrict__ col, const int4* __restrict__ row,
                                            const PreprocessParams p) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x < p.dst_w && y < p.dst_h) {
        preprocess_pixel(p, src, col, row, dst, x, y);
    }
}
