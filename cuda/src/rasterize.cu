// Front-to-back compositing per 16x16 tile (one thread per pixel, one block per tile), and the
// backward pass that walks each pixel's list back to front.
//
// Both kernels stage the tile's sorted list in shared memory, kBlockSize rows at a time. The
// backward reduces each Gaussian's gradient over the 32 pixels of a warp with shuffles before one
// atomicAdd per warp, and skips that work entirely for frozen rows (i < first_trainable): their
// transmittance and colour still enter every trainable row's gradient, but they get none.
#include "common.cuh"

namespace adlift {
namespace {

__device__ __forceinline__ void stage_row(const RasterArgs& a, int32_t row, float4* s_geom, float4* s_conic,
                                          float4* s_feat, int32_t* s_row, int slot) {
    s_geom[slot] = make_float4(a.means2d[2 * int64_t(row)], a.means2d[2 * int64_t(row) + 1], a.opacities[row], 0.f);
    s_conic[slot] = make_float4(a.conics[3 * int64_t(row)], a.conics[3 * int64_t(row) + 1],
                                a.conics[3 * int64_t(row) + 2], 0.f);
    s_feat[slot] = make_float4(a.colors[3 * int64_t(row)], a.colors[3 * int64_t(row) + 1],
                               a.colors[3 * int64_t(row) + 2], a.depths[row]);
    s_row[slot] = row;
}

__global__ void __launch_bounds__(kBlockSize) rasterize_forward_kernel(RasterArgs a) {
    const TileGrid& grid = a.grid;
    const TilePixel t = tile_pixel(grid);
    const int camera = t.camera, tid = t.tid;
    const int64_t tile = t.tile, pix = t.pix;
    const int first = a.ranges[2 * tile], end = a.ranges[2 * tile + 1];

    __shared__ float4 s_geom[kBlockSize], s_conic[kBlockSize], s_feat[kBlockSize];
    __shared__ int32_t s_row[kBlockSize];

    bool done = !t.inside;
    float T = 1.f;
    float acc[kFeatures] = {0.f, 0.f, 0.f, 0.f};
    int last = first;
    for (int base = first; base < end; base += kBlockSize) {
        if (__syncthreads_count(done) == kBlockSize) break;
        if (base + tid < end) stage_row(a, a.sorted_rows[base + tid], s_geom, s_conic, s_feat, s_row, tid);
        __syncthreads();
        const int count = min(kBlockSize, end - base);
        for (int j = 0; !done && j < count; ++j) {
            const float4 g = s_geom[j], q = s_conic[j];
            const float sigma = gaussian_sigma(q.x, q.y, q.z, g.x - t.cx, g.y - t.cy);
            const float alpha = fminf(kAlphaMax, g.z * __expf(-sigma));
            if (alpha < kAlphaThreshold) continue;
            const float next_T = T * (1.f - alpha);
            if (next_T <= kTransmittanceEps) {
                done = true;
                break;
            }
            const float w = alpha * T;
            const float4 f = s_feat[j];
            acc[0] += w * f.x;
            acc[1] += w * f.y;
            acc[2] += w * f.z;
            acc[3] += w * f.w;
            T = next_T;
            last = base + j + 1;
        }
    }
    if (!t.inside) return;
    const int64_t hw = int64_t(grid.width) * grid.height;
#pragma unroll
    for (int k = 0; k < kFeatures; ++k) a.features[(int64_t(camera) * kFeatures + k) * hw + pix] = acc[k];
    a.alpha[camera * hw + pix] = 1.f - T;
    a.last[camera * hw + pix] = last;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

__global__ void __launch_bounds__(kBlockSize) rasterize_backward_kernel(RasterBackwardArgs b) {
    const RasterArgs& a = b.fwd;
    const TileGrid& grid = a.grid;
    const TilePixel t = tile_pixel(grid);
    const int camera = t.camera, tid = t.tid;
    const int64_t tile = t.tile, pix = t.pix;
    const int first = a.ranges[2 * tile];
    const int64_t hw = int64_t(grid.width) * grid.height;
    const int64_t trainable = grid.points - b.first_trainable;
    const int64_t camera_row0 = int64_t(camera) * grid.points;

    __shared__ float4 s_geom[kBlockSize], s_conic[kBlockSize], s_feat[kBlockSize];
    __shared__ int32_t s_row[kBlockSize];
    __shared__ int s_end;

    // This pixel's state after its last Gaussian; walk back from there.
    const int last = t.inside ? a.last[camera * hw + pix] : first;
    const float T_final = t.inside ? 1.f - a.alpha[camera * hw + pix] : 1.f;
    float T = T_final;
    float g[kFeatures] = {0.f, 0.f, 0.f, 0.f};
    float g_alpha = 0.f;
    if (t.inside) {
#pragma unroll
        for (int k = 0; k < kFeatures; ++k) g[k] = b.v_features[(int64_t(camera) * kFeatures + k) * hw + pix];
        g_alpha = b.v_alpha[camera * hw + pix];
    }
    float suffix[kFeatures] = {0.f, 0.f, 0.f, 0.f};  // sum over later Gaussians of w * f

    if (tid == 0) s_end = first;
    __syncthreads();
    atomicMax(&s_end, last);
    __syncthreads();
    const int end = s_end;  // no pixel of the tile composited anything at or past this

    const unsigned lane = tid & 31u;
    // Gaussians at or past every pixel of this warp's `last` need no work from the warp at all.
    int warp_last = last;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) warp_last = max(warp_last, __shfl_xor_sync(0xffffffffu, warp_last, offset));
    for (int top = end; top > first; top -= kBlockSize) {
        const int bottom = max(first, top - kBlockSize);
        __syncthreads();  // the previous batch is no longer read
        if (top - 1 - tid >= bottom) stage_row(a, a.sorted_rows[top - 1 - tid], s_geom, s_conic, s_feat, s_row, tid);
        __syncthreads();
        const int count = top - bottom;
        for (int j = 0; j < count; ++j) {
            const int pos = top - 1 - j;
            if (pos >= warp_last) continue;  // warp-uniform
            const int64_t i = int64_t(s_row[j]) - camera_row0 - b.first_trainable;  // same for the whole block
            const bool trainable_row = i >= 0;
            const float4 geo = s_geom[j], q = s_conic[j], f = s_feat[j];
            const float dx = geo.x - t.cx, dy = geo.y - t.cy;
            const float sigma = gaussian_sigma(q.x, q.y, q.z, dx, dy);
            const float vis = __expf(-sigma);
            const float raw_alpha = geo.z * vis;
            const float alpha = fminf(kAlphaMax, raw_alpha);
            const bool valid = t.inside && pos < last && alpha >= kAlphaThreshold;
            float v_f[kFeatures] = {0.f, 0.f, 0.f, 0.f};
            float v_mx = 0.f, v_my = 0.f, v_a = 0.f, v_b = 0.f, v_c = 0.f, v_o = 0.f;
            if (valid) {
                const float ra = __frcp_rn(1.f - alpha);
                T *= ra;  // transmittance in front of this Gaussian
                const float w = alpha * T;
                const float fk[kFeatures] = {f.x, f.y, f.z, f.w};
                if (trainable_row) {  // frozen rows only carry T and the suffix back
                    float v_alpha = g_alpha * T_final * ra;
#pragma unroll
                    for (int k = 0; k < kFeatures; ++k) {
                        v_f[k] = w * g[k];
                        v_alpha += g[k] * (fk[k] * T - suffix[k] * ra);
                    }
                    if (raw_alpha <= kAlphaMax) {
                        v_o = v_alpha * vis;
                        const float v_sigma = -v_alpha * alpha;
                        v_a = 0.5f * v_sigma * dx * dx;
                        v_b = v_sigma * dx * dy;
                        v_c = 0.5f * v_sigma * dy * dy;
                        v_mx = v_sigma * (q.x * dx + q.y * dy);
                        v_my = v_sigma * (q.y * dx + q.z * dy);
                    }
                }
#pragma unroll
                for (int k = 0; k < kFeatures; ++k) suffix[k] += w * fk[k];
            }
            if (!trainable_row || !__any_sync(0xffffffffu, valid)) continue;
            v_mx = warp_sum(v_mx);
            v_my = warp_sum(v_my);
            v_a = warp_sum(v_a);
            v_b = warp_sum(v_b);
            v_c = warp_sum(v_c);
            v_o = warp_sum(v_o);
#pragma unroll
            for (int k = 0; k < kFeatures; ++k) v_f[k] = warp_sum(v_f[k]);
            if (lane == 0) {
                const int64_t out = int64_t(camera) * trainable + i;
                atomicAdd(b.v_means2d + 2 * out, v_mx);
                atomicAdd(b.v_means2d + 2 * out + 1, v_my);
                atomicAdd(b.v_conics + 3 * out, v_a);
                atomicAdd(b.v_conics + 3 * out + 1, v_b);
                atomicAdd(b.v_conics + 3 * out + 2, v_c);
                atomicAdd(b.v_opacities + out, v_o);
                atomicAdd(b.v_colors + 3 * out, v_f[0]);
                atomicAdd(b.v_colors + 3 * out + 1, v_f[1]);
                atomicAdd(b.v_colors + 3 * out + 2, v_f[2]);
                atomicAdd(b.v_depths + out, v_f[3]);
            }
        }
    }
}

dim3 tile_blocks(const TileGrid& grid) { return dim3(grid.tiles_x, grid.tiles_y, grid.num_cameras); }

}  // namespace

cudaError_t rasterize_forward(const RasterArgs& args, cudaStream_t stream) {
    if (args.grid.num_cameras == 0 || args.grid.tiles_x == 0 || args.grid.tiles_y == 0) return cudaSuccess;
    rasterize_forward_kernel<<<tile_blocks(args.grid), dim3(kTileSize, kTileSize), 0, stream>>>(args);
    return cudaGetLastError();
}

cudaError_t rasterize_backward(const RasterBackwardArgs& args, cudaStream_t stream) {
    const TileGrid& grid = args.fwd.grid;
    if (grid.num_cameras == 0 || grid.tiles_x == 0 || grid.tiles_y == 0) return cudaSuccess;
    if (args.first_trainable >= grid.points) return cudaSuccess;  // nothing to differentiate
    rasterize_backward_kernel<<<tile_blocks(grid), dim3(kTileSize, kTileSize), 0, stream>>>(args);
    return cudaGetLastError();
}

}  // namespace adlift
