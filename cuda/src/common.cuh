// Device helpers shared by the projection, binning and compositing kernels.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "adlift/raster.h"

namespace adlift {

constexpr float kAlphaThreshold = 1.0f / 255.0f;  // contributions below are skipped
constexpr float kAlphaMax = 0.999f;               // alpha clamp
constexpr float kTransmittanceEps = 1e-4f;        // a pixel ends before T would drop to <= this
constexpr float kMaxExtent = 3.33f;               // cap of the Mahalanobis box half-extent

// Real SH constants (3DGS / INRIA order and signs), as adlift/render/sh.py.
constexpr float kSH0 = 0.28209479177387814f;
constexpr float kSH1 = 0.4886025119029199f;
constexpr float kSH2_0 = 1.0925484305920792f, kSH2_1 = -1.0925484305920792f, kSH2_2 = 0.31539156525252005f,
                kSH2_3 = -1.0925484305920792f, kSH2_4 = 0.5462742152960396f;
constexpr float kSH3_0 = -0.5900435899266435f, kSH3_1 = 2.890611442640554f, kSH3_2 = -0.4570457994644658f,
                kSH3_3 = 0.3731763325901154f, kSH3_4 = -0.4570457994644658f, kSH3_5 = 1.445305721320277f,
                kSH3_6 = -0.5900435899266435f;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The SH basis at a unit direction (x, y, z): b[0 .. (degree+1)^2).
__device__ __forceinline__ void sh_basis(int degree, float x, float y, float z, float b[16]) {
    b[0] = kSH0;
    if (degree < 1) return;
    b[1] = -kSH1 * y;
    b[2] = kSH1 * z;
    b[3] = -kSH1 * x;
    if (degree < 2) return;
    const float xx = x * x, yy = y * y, zz = z * z;
    b[4] = kSH2_0 * x * y;
    b[5] = kSH2_1 * y * z;
    b[6] = kSH2_2 * (2.f * zz - xx - yy);
    b[7] = kSH2_3 * x * z;
    b[8] = kSH2_4 * (xx - yy);
    if (degree < 3) return;
    b[9] = kSH3_0 * y * (3.f * xx - yy);
    b[10] = kSH3_1 * x * y * z;
    b[11] = kSH3_2 * y * (4.f * zz - xx - yy);
    b[12] = kSH3_3 * z * (2.f * zz - 3.f * xx - 3.f * yy);
    b[13] = kSH3_4 * x * (4.f * zz - xx - yy);
    b[14] = kSH3_5 * z * (xx - yy);
    b[15] = kSH3_6 * x * (xx - 3.f * yy);
}

// 0.5 + sum_k basis_k(d) coeffs[k] per channel (the colour before its clamp at 0); fills `basis`.
template <int kDegree>
__device__ __forceinline__ void sh_colour(const float d[3], const float* coeffs, float basis[16], float out[3]) {
    sh_basis(kDegree, d[0], d[1], d[2], basis);
    out[0] = out[1] = out[2] = 0.5f;
#pragma unroll
    for (int k = 0; k < (kDegree + 1) * (kDegree + 1); ++k)
#pragma unroll
        for (int ch = 0; ch < 3; ++ch) out[ch] += basis[k] * coeffs[3 * k + ch];
}

// Gradient w.r.t. the unit direction of sum_k g[k] * basis_k(x, y, z), k >= 1.
__device__ __forceinline__ void sh_basis_vjp(int degree, float x, float y, float z, const float g[16],
                                             float& vx, float& vy, float& vz) {
    vx = vy = vz = 0.f;
    if (degree < 1) return;
    vx += -kSH1 * g[3];
    vy += -kSH1 * g[1];
    vz += kSH1 * g[2];
    if (degree < 2) return;
    const float xx = x * x, yy = y * y, zz = z * z;
    vx += kSH2_0 * y * g[4] - 2.f * kSH2_2 * x * g[6] + kSH2_3 * z * g[7] + 2.f * kSH2_4 * x * g[8];
    vy += kSH2_0 * x * g[4] + kSH2_1 * z * g[5] - 2.f * kSH2_2 * y * g[6] - 2.f * kSH2_4 * y * g[8];
    vz += kSH2_1 * y * g[5] + 4.f * kSH2_2 * z * g[6] + kSH2_3 * x * g[7];
    if (degree < 3) return;
    vx += kSH3_0 * 6.f * x * y * g[9] + kSH3_1 * y * z * g[10] - 2.f * kSH3_2 * x * y * g[11] -
          6.f * kSH3_3 * x * z * g[12] + kSH3_4 * (4.f * zz - 3.f * xx - yy) * g[13] +
          2.f * kSH3_5 * x * z * g[14] + 3.f * kSH3_6 * (xx - yy) * g[15];
    vy += 3.f * kSH3_0 * (xx - yy) * g[9] + kSH3_1 * x * z * g[10] + kSH3_2 * (4.f * zz - xx - 3.f * yy) * g[11] -
          6.f * kSH3_3 * y * z * g[12] - 2.f * kSH3_4 * x * y * g[13] - 2.f * kSH3_5 * y * z * g[14] -
          6.f * kSH3_6 * x * y * g[15];
    vz += kSH3_1 * x * y * g[10] + 8.f * kSH3_2 * y * z * g[11] + kSH3_3 * (6.f * zz - 3.f * xx - 3.f * yy) * g[12] +
          8.f * kSH3_4 * x * z * g[13] + kSH3_5 * (xx - yy) * g[14];
}

// Tiles [x0, x1) x [y0, y1) touched by a row's screen box (centre m, half extents r).
struct TileBox {
    int x0, x1, y0, y1;
    __device__ __forceinline__ int64_t count() const {
        return (x1 > x0 && y1 > y0) ? int64_t(x1 - x0) * int64_t(y1 - y0) : 0;
    }
};

__device__ __forceinline__ TileBox tile_box(float mx, float my, int rx, int ry, int tiles_x, int tiles_y) {
    const float t = float(kTileSize);
    TileBox b;
    b.x0 = min(max(0, int(floorf((mx - rx) / t))), tiles_x);
    b.x1 = min(max(0, int(ceilf((mx + rx) / t))), tiles_x);
    b.y0 = min(max(0, int(floorf((my - ry) / t))), tiles_y);
    b.y1 = min(max(0, int(ceilf((my + ry) / t))), tiles_y);
    return b;
}

// The pixel a thread of a 16x16 tile block shades (grid: x, y tiles, z camera).
struct TilePixel {
    int camera;
    int64_t tile;  // camera * tiles + tile row-major
    int px, py, tid;
    bool inside;   // within the image (edge tiles are partial)
    float cx, cy;  // pixel centre
    int64_t pix;   // py * width + px
};

__device__ __forceinline__ TilePixel tile_pixel(const TileGrid& grid) {
    TilePixel t;
    t.camera = blockIdx.z;
    t.tile = int64_t(t.camera) * grid.tiles_x * grid.tiles_y + int64_t(blockIdx.y) * grid.tiles_x + blockIdx.x;
    t.px = blockIdx.x * kTileSize + threadIdx.x;
    t.py = blockIdx.y * kTileSize + threadIdx.y;
    t.tid = threadIdx.y * kTileSize + threadIdx.x;
    t.inside = t.px < grid.width && t.py < grid.height;
    t.cx = t.px + 0.5f;
    t.cy = t.py + 0.5f;
    t.pix = int64_t(t.py) * grid.width + t.px;
    return t;
}

// Mahalanobis term sigma = 0.5 d^T Sigma^-1 d of a pixel offset d = mean - pixel.
__device__ __forceinline__ float gaussian_sigma(float a, float b, float c, float dx, float dy) {
    return 0.5f * (a * dx * dx + c * dy * dy) + b * dx * dy;
}

}  // namespace adlift
