// AdLift CUDA rasteriser: plain-CUDA launchers (no torch headers, so every .cu file compiles with
// a bare `nvcc -c`). The torch bindings (cuda/bindings.cpp) allocate memory and call these.
//
// Semantics are those of adlift/render (the pure-PyTorch reference): EWA projection with the
// frustum-clamped Jacobian and a 0.3 px^2 dilation, opacity-aware screen boxes, SH degree 0..3,
// 16x16 tiles, front-to-back compositing with alpha = min(0.999, o exp(-sigma)), alpha < 1/255
// skipped, and a pixel ending before the Gaussian that takes its transmittance to <= 1e-4.
//
// Layout conventions (all float32, row-major, contiguous):
//   scene:     means [N,3], quats [N,4] (w,x,y,z), log_scales [N,3], opacity_logits [N], sh [N,K,3]
//   cameras:   viewmats [C,4,4] world-to-camera (OpenCV axes), Ks [C,3,3]
//   projected: [C, P, ...] rows; one launch writes columns [offset, offset + N) of P ("stride"),
//              so a cached frozen set and a trainable set share one buffer without a copy
//   images:    features [C,4,H,W] (r, g, b, depth-weighted sum), alpha [C,H,W]
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace adlift {

constexpr int kTileSize = 16;
constexpr int kBlockSize = kTileSize * kTileSize;
constexpr int kFeatures = 4;  // r, g, b, depth

// ---------------------------------------------------------------------------------- projection
struct ProjectArgs {
    int num_cameras = 0;     // C
    int num_gaussians = 0;   // N (this launch's set)
    int sh_coeffs = 1;       // K, coefficients per channel stored in `sh`
    int sh_degree = 0;       // degree evaluated (K >= (degree + 1)^2)
    int width = 0, height = 0;
    float near_plane = 0.01f, far_plane = 1e10f, eps2d = 0.3f;
    const float* means = nullptr;           // [N,3]
    const float* quats = nullptr;           // [N,4]
    const float* log_scales = nullptr;      // [N,3]
    const float* opacity_logits = nullptr;  // [N]
    const float* sh = nullptr;              // [N,K,3]
    const float* viewmats = nullptr;        // [C,4,4]
    const float* Ks = nullptr;              // [C,3,3]
    int64_t stride = 0;  // P: rows per camera in the projected buffers
    int64_t offset = 0;  // first row of this set
    // Outputs, [C,P,...]; rows of culled Gaussians get radii (0, 0) and nothing else.
    float* means2d = nullptr;    // [C,P,2]
    float* conics = nullptr;     // [C,P,3] inverse 2D covariance (xx, xy, yy)
    float* depths = nullptr;     // [C,P]
    float* opacities = nullptr;  // [C,P]
    float* colors = nullptr;     // [C,P,3]
    int32_t* radii = nullptr;    // [C,P,2]
};

cudaError_t project_forward(const ProjectArgs& args, cudaStream_t stream);

struct ProjectBackwardArgs {
    ProjectArgs fwd;  // inputs and the radii of the forward pass (outputs are not read)
    // Gradients w.r.t. this set's projected rows, [C,N,...] (compact: no stride/offset).
    const float* v_means2d = nullptr;
    const float* v_conics = nullptr;
    const float* v_depths = nullptr;
    const float* v_opacities = nullptr;
    const float* v_colors = nullptr;
    // Gradients w.r.t. the scene: written once per Gaussian for one camera (no need to zero them),
    // accumulated with atomicAdd for several cameras (zero them first).
    float* v_means = nullptr;           // [N,3]
    float* v_quats = nullptr;           // [N,4]
    float* v_log_scales = nullptr;      // [N,3]
    float* v_opacity_logits = nullptr;  // [N]
    float* v_sh = nullptr;              // [N,K,3]
};

cudaError_t project_backward(const ProjectBackwardArgs& args, cudaStream_t stream);

// ---------------------------------------------------------------------------------- binning
struct TileGrid {
    int num_cameras = 0;
    int64_t points = 0;  // P, rows per camera
    int width = 0, height = 0;
    int tiles_x = 0, tiles_y = 0;
};

// Tiles each row's box touches: counts [C*P] (0 for culled rows).
cudaError_t count_tiles(const TileGrid& grid, const float* means2d, const int32_t* radii, int64_t* counts,
                        cudaStream_t stream);
// Inclusive prefix sum of counts [n] into offsets [n]; call with temp == nullptr to get the size.
cudaError_t inclusive_scan(void* temp, size_t& temp_bytes, const int64_t* counts, int64_t* offsets, int64_t n,
                           cudaStream_t stream);
// One (key, row) pair per (row, tile): key = (camera * tiles + tile) << 32 | float bits of depth.
cudaError_t write_intersections(const TileGrid& grid, const float* means2d, const int32_t* radii,
                                const float* depths, const int64_t* offsets, uint64_t* keys, int32_t* rows,
                                cudaStream_t stream);
// Radix sort of the pairs by key (bits [0, end_bit)) between two buffer pairs (keys[0], rows[0])
// and (keys[1], rows[1]), starting in pair 0; `selector` returns the pair holding the result.
// Only a small temp is needed (no third copy); temp == nullptr asks for its size.
cudaError_t sort_intersections(void* temp, size_t& temp_bytes, uint64_t* keys[2], int32_t* rows[2], int64_t n,
                               int end_bit, int& selector, cudaStream_t stream);
// ranges [C*tiles, 2] = [first, end) of each tile in the sorted list; zero it first.
cudaError_t tile_ranges(const uint64_t* sorted_keys, int64_t n, int32_t* ranges, cudaStream_t stream);

// ---------------------------------------------------------------------------------- compositing
struct RasterArgs {
    TileGrid grid;
    const float* means2d = nullptr;    // [C,P,2]
    const float* conics = nullptr;     // [C,P,3]
    const float* opacities = nullptr;  // [C,P]
    const float* colors = nullptr;     // [C,P,3]
    const float* depths = nullptr;     // [C,P]
    const int32_t* ranges = nullptr;   // [C*tiles, 2]
    const int32_t* sorted_rows = nullptr;  // [M] row index c * P + i
    float* features = nullptr;  // [C,4,H,W] out
    float* alpha = nullptr;     // [C,H,W] out, 1 - final transmittance
    int32_t* last = nullptr;    // [C,H,W] out, end of the composited part of the tile's list
};

cudaError_t rasterize_forward(const RasterArgs& args, cudaStream_t stream);

struct RasterBackwardArgs {
    RasterArgs fwd;  // inputs and the forward outputs alpha and last (features not read)
    const float* v_features = nullptr;  // [C,4,H,W]
    const float* v_alpha = nullptr;     // [C,H,W]
    int64_t first_trainable = 0;        // rows i < first_trainable of each camera get no gradient
    // Gradients of rows first_trainable..P-1, [C, P - first_trainable, ...], accumulated.
    float* v_means2d = nullptr;
    float* v_conics = nullptr;
    float* v_opacities = nullptr;
    float* v_colors = nullptr;
    float* v_depths = nullptr;
};

cudaError_t rasterize_backward(const RasterBackwardArgs& args, cudaStream_t stream);

}  // namespace adlift
