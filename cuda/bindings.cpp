// torch bindings of the AdLift CUDA rasteriser: argument checks, allocations, streams.
// The kernels (cuda/src/*.cu) see raw pointers only; autograd lives in adlift/render/cuda_backend.py.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include <limits>
#include <tuple>

#include "adlift/raster.h"

namespace {

using at::Tensor;

#define ADLIFT_CHECK_CUDA(call)                                                                     \
    do {                                                                                            \
        const cudaError_t err_ = (call);                                                            \
        TORCH_CHECK(err_ == cudaSuccess, "adlift CUDA rasteriser: ", #call, ": ", cudaGetErrorString(err_)); \
    } while (0)

void check(const Tensor& t, const char* name, at::ScalarType dtype = at::kFloat) {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
    TORCH_CHECK(t.scalar_type() == dtype, name, " has dtype ", t.scalar_type(), ", expected ", dtype);
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

adlift::ProjectArgs project_args(const Tensor& means, const Tensor& quats, const Tensor& log_scales,
                                 const Tensor& logits, const Tensor& sh, const Tensor& viewmats, const Tensor& Ks,
                                 int64_t width, int64_t height, int64_t sh_degree, double near_plane,
                                 double far_plane, double eps2d, int64_t stride, int64_t offset) {
    check(means, "means");
    check(quats, "quats");
    check(log_scales, "log_scales");
    check(logits, "opacity_logits");
    check(sh, "sh");
    check(viewmats, "viewmats");
    check(Ks, "Ks");
    const int64_t n = means.size(0);
    TORCH_CHECK(means.dim() == 2 && means.size(1) == 3, "means must be [N,3]");
    TORCH_CHECK(quats.sizes() == at::IntArrayRef({n, 4}), "quats must be [N,4]");
    TORCH_CHECK(log_scales.sizes() == at::IntArrayRef({n, 3}), "log_scales must be [N,3]");
    TORCH_CHECK(logits.sizes() == at::IntArrayRef({n}), "opacity_logits must be [N]");
    TORCH_CHECK(sh.dim() == 3 && sh.size(0) == n && sh.size(2) == 3, "sh must be [N,K,3]");
    TORCH_CHECK(sh_degree >= 0 && sh_degree <= 3 && sh.size(1) >= (sh_degree + 1) * (sh_degree + 1),
                "sh_degree ", sh_degree, " needs ", (sh_degree + 1) * (sh_degree + 1), " coefficients");
    TORCH_CHECK(viewmats.dim() == 3 && viewmats.size(1) == 4 && viewmats.size(2) == 4, "viewmats must be [C,4,4]");
    TORCH_CHECK(Ks.sizes() == at::IntArrayRef({viewmats.size(0), 3, 3}), "Ks must be [C,3,3]");
    TORCH_CHECK(offset >= 0 && offset + n <= stride, "rows [", offset, ", ", offset + n, ") exceed ", stride);
    adlift::ProjectArgs a;
    a.num_cameras = int(viewmats.size(0));
    a.num_gaussians = int(n);
    a.sh_coeffs = int(sh.size(1));
    a.sh_degree = int(sh_degree);
    a.width = int(width);
    a.height = int(height);
    a.near_plane = float(near_plane);
    a.far_plane = float(far_plane);
    a.eps2d = float(eps2d);
    a.means = means.data_ptr<float>();
    a.quats = quats.data_ptr<float>();
    a.log_scales = log_scales.data_ptr<float>();
    a.opacity_logits = logits.data_ptr<float>();
    a.sh = sh.data_ptr<float>();
    a.viewmats = viewmats.data_ptr<float>();
    a.Ks = Ks.data_ptr<float>();
    a.stride = stride;
    a.offset = offset;
    return a;
}

// Projects a set into rows [offset, offset + N) of the [C, P, ...] buffers given.
void project(const Tensor& means, const Tensor& quats, const Tensor& log_scales, const Tensor& logits,
             const Tensor& sh, const Tensor& viewmats, const Tensor& Ks, int64_t width, int64_t height,
             int64_t sh_degree, double near_plane, double far_plane, double eps2d, Tensor means2d, Tensor conics,
             Tensor depths, Tensor opacities, Tensor colors, Tensor radii, int64_t offset) {
    const at::cuda::CUDAGuard guard(means.device());
    check(means2d, "means2d");
    check(conics, "conics");
    check(depths, "depths");
    check(opacities, "opacities");
    check(colors, "colors");
    check(radii, "radii", at::kInt);
    TORCH_CHECK(depths.dim() == 2 && depths.size(0) == viewmats.size(0), "depths must be [C,P]");
    const int64_t stride = depths.size(1);
    adlift::ProjectArgs a = project_args(means, quats, log_scales, logits, sh, viewmats, Ks, width, height,
                                         sh_degree, near_plane, far_plane, eps2d, stride, offset);
    a.means2d = means2d.data_ptr<float>();
    a.conics = conics.data_ptr<float>();
    a.depths = depths.data_ptr<float>();
    a.opacities = opacities.data_ptr<float>();
    a.colors = colors.data_ptr<float>();
    a.radii = radii.data_ptr<int32_t>();
    ADLIFT_CHECK_CUDA(adlift::project_forward(a, at::cuda::getCurrentCUDAStream()));
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> project_backward(
    const Tensor& means, const Tensor& quats, const Tensor& log_scales, const Tensor& logits, const Tensor& sh,
    const Tensor& viewmats, const Tensor& Ks, int64_t width, int64_t height, int64_t sh_degree, double near_plane,
    double far_plane, double eps2d, const Tensor& radii, int64_t offset, const Tensor& v_means2d,
    const Tensor& v_conics, const Tensor& v_depths, const Tensor& v_opacities, const Tensor& v_colors) {
    const at::cuda::CUDAGuard guard(means.device());
    check(radii, "radii", at::kInt);
    adlift::ProjectBackwardArgs b;
    b.fwd = project_args(means, quats, log_scales, logits, sh, viewmats, Ks, width, height, sh_degree, near_plane,
                         far_plane, eps2d, radii.size(1), offset);
    b.fwd.radii = radii.data_ptr<int32_t>();
    for (const Tensor* t : {&v_means2d, &v_conics, &v_depths, &v_opacities, &v_colors}) check(*t, "gradient");
    TORCH_CHECK(v_depths.numel() == int64_t(b.fwd.num_cameras) * b.fwd.num_gaussians, "v_depths must be [C,N]");
    b.v_means2d = v_means2d.data_ptr<float>();
    b.v_conics = v_conics.data_ptr<float>();
    b.v_depths = v_depths.data_ptr<float>();
    b.v_opacities = v_opacities.data_ptr<float>();
    b.v_colors = v_colors.data_ptr<float>();
    // One camera: the kernel writes every element; several: it accumulates into zeros.
    const auto alloc = [&](const Tensor& like) { return viewmats.size(0) == 1 ? at::empty_like(like) : at::zeros_like(like); };
    Tensor v_means = alloc(means), v_quats = alloc(quats), v_log_scales = alloc(log_scales);
    Tensor v_logits = alloc(logits), v_sh = alloc(sh);
    b.v_means = v_means.data_ptr<float>();
    b.v_quats = v_quats.data_ptr<float>();
    b.v_log_scales = v_log_scales.data_ptr<float>();
    b.v_opacity_logits = v_logits.data_ptr<float>();
    b.v_sh = v_sh.data_ptr<float>();
    ADLIFT_CHECK_CUDA(adlift::project_backward(b, at::cuda::getCurrentCUDAStream()));
    return {v_means, v_quats, v_log_scales, v_logits, v_sh};
}

adlift::RasterArgs raster_args(const Tensor& means2d, const Tensor& conics, const Tensor& opacities,
                               const Tensor& colors, const Tensor& depths, int64_t width, int64_t height) {
    check(means2d, "means2d");
    check(conics, "conics");
    check(opacities, "opacities");
    check(colors, "colors");
    check(depths, "depths");
    TORCH_CHECK(depths.dim() == 2, "depths must be [C,P]");
    TORCH_CHECK(width > 0 && height > 0, "image size must be positive");
    TORCH_CHECK(depths.numel() < std::numeric_limits<int32_t>::max(), "too many (camera, Gaussian) rows");
    adlift::RasterArgs a;
    a.grid.num_cameras = int(depths.size(0));
    a.grid.points = depths.size(1);
    a.grid.width = int(width);
    a.grid.height = int(height);
    a.grid.tiles_x = int((width + adlift::kTileSize - 1) / adlift::kTileSize);
    a.grid.tiles_y = int((height + adlift::kTileSize - 1) / adlift::kTileSize);
    a.means2d = means2d.data_ptr<float>();
    a.conics = conics.data_ptr<float>();
    a.opacities = opacities.data_ptr<float>();
    a.colors = colors.data_ptr<float>();
    a.depths = depths.data_ptr<float>();
    return a;
}

int bit_length(int64_t v) {
    int bits = 0;
    while (v > 0) {
        ++bits;
        v >>= 1;
    }
    return bits;
}

// Bins, sorts and composites; returns (features [C,4,H,W], alpha [C,1,H,W], last [C,H,W],
// ranges [C*tiles,2], sorted_rows [M]). `poison` fills outputs with NaN / -1 first (tests).
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rasterize_forward(
    const Tensor& means2d, const Tensor& conics, const Tensor& opacities, const Tensor& colors,
    const Tensor& depths, const Tensor& radii, int64_t width, int64_t height, bool poison) {
    const at::cuda::CUDAGuard guard(means2d.device());
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    adlift::RasterArgs a = raster_args(means2d, conics, opacities, colors, depths, width, height);
    check(radii, "radii", at::kInt);
    const auto f32 = means2d.options();
    const auto i32 = f32.dtype(at::kInt);
    const int64_t C = a.grid.num_cameras, rows = C * a.grid.points;
    const int64_t tiles = C * a.grid.tiles_x * a.grid.tiles_y;

    // Binning.
    Tensor counts = at::empty({rows}, f32.dtype(at::kLong));
    Tensor offsets = at::empty({rows}, f32.dtype(at::kLong));
    ADLIFT_CHECK_CUDA(adlift::count_tiles(a.grid, a.means2d, radii.data_ptr<int32_t>(), counts.data_ptr<int64_t>(), stream));
    int64_t isect = 0;
    if (rows > 0) {
        size_t scan_bytes = 0;
        ADLIFT_CHECK_CUDA(adlift::inclusive_scan(nullptr, scan_bytes, counts.data_ptr<int64_t>(),
                                                 offsets.data_ptr<int64_t>(), rows, stream));
        Tensor scan_temp = at::empty({int64_t(scan_bytes)}, f32.dtype(at::kByte));
        ADLIFT_CHECK_CUDA(adlift::inclusive_scan(scan_temp.data_ptr(), scan_bytes, counts.data_ptr<int64_t>(),
                                                 offsets.data_ptr<int64_t>(), rows, stream));
        isect = offsets[rows - 1].item<int64_t>();  // one host sync: the size of the next buffers
    }
    TORCH_CHECK(isect < std::numeric_limits<int32_t>::max(), "too many tile intersections: ", isect);
    Tensor ranges = at::zeros({tiles, 2}, i32);
    Tensor sorted_rows = at::empty({isect}, i32);
    if (isect > 0) {
        // Two buffer pairs for the radix sort (CUB's DoubleBuffer: no third copy); the pair not
        // holding the result is freed when this scope ends.
        Tensor keys[2] = {at::empty({isect}, f32.dtype(at::kLong)), at::empty({isect}, f32.dtype(at::kLong))};
        Tensor ids[2] = {at::empty({isect}, i32), at::empty({isect}, i32)};
        uint64_t* key_ptr[2] = {reinterpret_cast<uint64_t*>(keys[0].data_ptr<int64_t>()),
                                reinterpret_cast<uint64_t*>(keys[1].data_ptr<int64_t>())};
        int32_t* id_ptr[2] = {ids[0].data_ptr<int32_t>(), ids[1].data_ptr<int32_t>()};
        ADLIFT_CHECK_CUDA(adlift::write_intersections(a.grid, a.means2d, radii.data_ptr<int32_t>(), a.depths,
                                                      offsets.data_ptr<int64_t>(), key_ptr[0], id_ptr[0], stream));
        counts = Tensor();
        offsets = Tensor();
        const int end_bit = 32 + bit_length(tiles);
        size_t sort_bytes = 0;
        int selector = 0;
        ADLIFT_CHECK_CUDA(adlift::sort_intersections(nullptr, sort_bytes, key_ptr, id_ptr, isect, end_bit, selector, stream));
        Tensor sort_temp = at::empty({int64_t(sort_bytes)}, f32.dtype(at::kByte));
        ADLIFT_CHECK_CUDA(adlift::sort_intersections(sort_temp.data_ptr(), sort_bytes, key_ptr, id_ptr, isect, end_bit,
                                                     selector, stream));
        ADLIFT_CHECK_CUDA(adlift::tile_ranges(key_ptr[selector], isect, ranges.data_ptr<int32_t>(), stream));
        sorted_rows = ids[selector];
    }

    // Compositing.
    Tensor features = at::empty({C, adlift::kFeatures, height, width}, f32);
    Tensor alpha = at::empty({C, 1, height, width}, f32);
    Tensor last = at::empty({C, height, width}, i32);
    if (poison) {
        features.fill_(std::numeric_limits<float>::quiet_NaN());
        alpha.fill_(std::numeric_limits<float>::quiet_NaN());
        last.fill_(-1);
    }
    a.ranges = ranges.data_ptr<int32_t>();
    a.sorted_rows = sorted_rows.data_ptr<int32_t>();
    a.features = features.data_ptr<float>();
    a.alpha = alpha.data_ptr<float>();
    a.last = last.data_ptr<int32_t>();
    ADLIFT_CHECK_CUDA(adlift::rasterize_forward(a, stream));
    return {features, alpha, last, ranges, sorted_rows};
}

// Gradients of the rows first_trainable..P-1 of each camera, [C, P - first_trainable, ...].
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rasterize_backward(
    const Tensor& means2d, const Tensor& conics, const Tensor& opacities, const Tensor& colors,
    const Tensor& depths, const Tensor& ranges, const Tensor& sorted_rows, const Tensor& alpha, const Tensor& last,
    const Tensor& v_features, const Tensor& v_alpha, int64_t first_trainable, int64_t width, int64_t height) {
    const at::cuda::CUDAGuard guard(means2d.device());
    adlift::RasterBackwardArgs b;
    b.fwd = raster_args(means2d, conics, opacities, colors, depths, width, height);
    check(ranges, "ranges", at::kInt);
    check(sorted_rows, "sorted_rows", at::kInt);
    check(alpha, "alpha");
    check(last, "last", at::kInt);
    check(v_features, "v_features");
    check(v_alpha, "v_alpha");
    const int64_t C = b.fwd.grid.num_cameras, P = b.fwd.grid.points;
    TORCH_CHECK(first_trainable >= 0 && first_trainable <= P, "first_trainable out of range");
    TORCH_CHECK(v_features.numel() == C * adlift::kFeatures * height * width, "v_features must be [C,4,H,W]");
    TORCH_CHECK(v_alpha.numel() == C * height * width, "v_alpha must be [C,1,H,W]");
    b.fwd.ranges = ranges.data_ptr<int32_t>();
    b.fwd.sorted_rows = sorted_rows.data_ptr<int32_t>();
    b.fwd.alpha = alpha.data_ptr<float>();
    b.fwd.last = last.data_ptr<int32_t>();
    b.v_features = v_features.data_ptr<float>();
    b.v_alpha = v_alpha.data_ptr<float>();
    b.first_trainable = first_trainable;
    const int64_t n = P - first_trainable;
    const auto f32 = means2d.options();
    Tensor v_means2d = at::zeros({C, n, 2}, f32), v_conics = at::zeros({C, n, 3}, f32);
    Tensor v_opacities = at::zeros({C, n}, f32), v_colors = at::zeros({C, n, 3}, f32), v_depths = at::zeros({C, n}, f32);
    b.v_means2d = v_means2d.data_ptr<float>();
    b.v_conics = v_conics.data_ptr<float>();
    b.v_opacities = v_opacities.data_ptr<float>();
    b.v_colors = v_colors.data_ptr<float>();
    b.v_depths = v_depths.data_ptr<float>();
    ADLIFT_CHECK_CUDA(adlift::rasterize_backward(b, at::cuda::getCurrentCUDAStream()));
    return {v_means2d, v_conics, v_opacities, v_colors, v_depths};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "AdLift CUDA rasteriser (see cuda/README.md)";
    m.def("project", &project, "EWA-project a Gaussian set into rows [offset, offset+N) of [C,P] buffers");
    m.def("project_backward", &project_backward, "gradients of a projected set w.r.t. its Gaussians");
    m.def("rasterize_forward", &rasterize_forward, "bin, sort and composite projected rows");
    m.def("rasterize_backward", &rasterize_backward, "gradients w.r.t. the trainable projected rows");
}
