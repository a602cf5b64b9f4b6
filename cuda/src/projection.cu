// EWA projection of 3D Gaussians into C pinhole cameras, and its hand-written backward.
//
// One thread per (camera, Gaussian). The forward recomputes nothing it does not write; the
// backward recomputes the few forward intermediates it needs (cheaper than storing them).
#include "common.cuh"

namespace adlift {
namespace {

struct Camera {
    float W[9];  // world-to-camera rotation, row-major
    float t[3];
    float fx, fy, cx, cy;
};

__device__ __forceinline__ Camera load_camera(const float* viewmats, const float* Ks, int c) {
    Camera cam;
    const float* V = viewmats + 16 * c;
    const float* K = Ks + 9 * c;
#pragma unroll
    for (int r = 0; r < 3; ++r) {
#pragma unroll
        for (int j = 0; j < 3; ++j) cam.W[3 * r + j] = V[4 * r + j];
        cam.t[r] = V[4 * r + 3];
    }
    cam.fx = K[0];
    cam.fy = K[4];
    cam.cx = K[2];
    cam.cy = K[5];
    return cam;
}

// Rotation matrix (row-major) of a normalised quaternion (w, x, y, z).
__device__ __forceinline__ void quat_to_rot(float w, float x, float y, float z, float R[9]) {
    R[0] = 1.f - 2.f * (y * y + z * z);
    R[1] = 2.f * (x * y - w * z);
    R[2] = 2.f * (x * z + w * y);
    R[3] = 2.f * (x * y + w * z);
    R[4] = 1.f - 2.f * (x * x + z * z);
    R[5] = 2.f * (y * z - w * x);
    R[6] = 2.f * (x * z - w * y);
    R[7] = 2.f * (y * z + w * x);
    R[8] = 1.f - 2.f * (x * x + y * y);
}

// Everything the forward computes for one (camera, Gaussian), kept for the backward's reuse.
struct Projected {
    float q[4], qnorm;  // normalised quaternion and the original norm
    float R[9], s[3];   // rotation, scales
    float V[9];         // W R S (rows)
    float p[3];         // camera-space mean
    float tx, ty;       // frustum-clamped x, y used by the Jacobian
    bool clamp_x, clamp_y;
    float t0[3], t1[3];  // rows of J W R S
    float sxx, sxy, syy, det;
    float opacity;
};

__device__ __forceinline__ void project_one(const ProjectArgs& a, const Camera& cam, int64_t i, Projected& g) {
    const float* m = a.means + 3 * i;
#pragma unroll
    for (int r = 0; r < 3; ++r)
        g.p[r] = cam.W[3 * r] * m[0] + cam.W[3 * r + 1] * m[1] + cam.W[3 * r + 2] * m[2] + cam.t[r];

    const float* qi = a.quats + 4 * i;
    const float n = sqrtf(qi[0] * qi[0] + qi[1] * qi[1] + qi[2] * qi[2] + qi[3] * qi[3]);
    g.qnorm = fmaxf(n, 1e-12f);
#pragma unroll
    for (int k = 0; k < 4; ++k) g.q[k] = qi[k] / g.qnorm;
    quat_to_rot(g.q[0], g.q[1], g.q[2], g.q[3], g.R);
#pragma unroll
    for (int k = 0; k < 3; ++k) g.s[k] = expf(a.log_scales[3 * i + k]);
    // V = W (R S): row r, column k.
#pragma unroll
    for (int r = 0; r < 3; ++r)
#pragma unroll
        for (int k = 0; k < 3; ++k)
            g.V[3 * r + k] = (cam.W[3 * r] * g.R[k] + cam.W[3 * r + 1] * g.R[3 + k] + cam.W[3 * r + 2] * g.R[6 + k]) * g.s[k];

    const float x = g.p[0], y = g.p[1], z = g.p[2];
    const float rz = 1.f / z;
    const float tan_x = 0.5f * a.width / cam.fx, tan_y = 0.5f * a.height / cam.fy;
    const float lo_x = -(cam.cx / cam.fx + 0.3f * tan_x), hi_x = (a.width - cam.cx) / cam.fx + 0.3f * tan_x;
    const float lo_y = -(cam.cy / cam.fy + 0.3f * tan_y), hi_y = (a.height - cam.cy) / cam.fy + 0.3f * tan_y;
    const float ux = x * rz, uy = y * rz;
    g.clamp_x = !(ux >= lo_x && ux <= hi_x);
    g.clamp_y = !(uy >= lo_y && uy <= hi_y);
    g.tx = z * fminf(fmaxf(ux, lo_x), hi_x);
    g.ty = z * fminf(fmaxf(uy, lo_y), hi_y);

    const float a0 = cam.fx * rz, b0 = cam.fx * g.tx * rz * rz;
    const float a1 = cam.fy * rz, b1 = cam.fy * g.ty * rz * rz;
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        g.t0[k] = a0 * g.V[k] - b0 * g.V[6 + k];
        g.t1[k] = a1 * g.V[3 + k] - b1 * g.V[6 + k];
    }
    g.sxx = g.t0[0] * g.t0[0] + g.t0[1] * g.t0[1] + g.t0[2] * g.t0[2] + a.eps2d;
    g.sxy = g.t0[0] * g.t1[0] + g.t0[1] * g.t1[1] + g.t0[2] * g.t1[2];
    g.syy = g.t1[0] * g.t1[0] + g.t1[1] * g.t1[1] + g.t1[2] * g.t1[2] + a.eps2d;
    g.det = g.sxx * g.syy - g.sxy * g.sxy;
    g.opacity = 1.f / (1.f + expf(-a.opacity_logits[i]));
}

// Unit view direction and its length, from the camera centre -W^T t to the mean.
__device__ __forceinline__ void view_direction(const Camera& cam, const float* m, float d[3], float& len) {
    float raw[3];
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        const float centre = -(cam.W[k] * cam.t[0] + cam.W[3 + k] * cam.t[1] + cam.W[6 + k] * cam.t[2]);
        raw[k] = m[k] - centre;
    }
    len = fmaxf(sqrtf(raw[0] * raw[0] + raw[1] * raw[1] + raw[2] * raw[2]), 1e-12f);
#pragma unroll
    for (int k = 0; k < 3; ++k) d[k] = raw[k] / len;
}

template <int kDegree>
__global__ void project_forward_kernel(ProjectArgs a) {
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= int64_t(a.num_cameras) * a.num_gaussians) return;
    const int c = int(idx / a.num_gaussians);
    const int64_t i = idx - int64_t(c) * a.num_gaussians;
    const int64_t row = int64_t(c) * a.stride + a.offset + i;
    a.radii[2 * row] = 0;
    a.radii[2 * row + 1] = 0;

    const Camera cam = load_camera(a.viewmats, a.Ks, c);
    Projected g;
    project_one(a, cam, i, g);
    const float z = g.p[2];
    if (!(z >= a.near_plane && z <= a.far_plane)) return;
    if (!(g.det > 0.f) || !(g.opacity >= kAlphaThreshold)) return;

    const float extent = fminf(kMaxExtent, sqrtf(2.f * logf(fmaxf(g.opacity / kAlphaThreshold, 1.f))));
    const float rx = ceilf(extent * sqrtf(fmaxf(g.sxx, 0.f)));
    const float ry = ceilf(extent * sqrtf(fmaxf(g.syy, 0.f)));
    const float rz = 1.f / z;
    const float mx = cam.fx * g.p[0] * rz + cam.cx;
    const float my = cam.fy * g.p[1] * rz + cam.cy;
    const bool valid = (rx > 0.f || ry > 0.f) && mx + rx > 0.f && mx - rx < a.width && my + ry > 0.f &&
                       my - ry < a.height && isfinite(mx) && isfinite(my) && isfinite(rx) && isfinite(ry);
    if (!valid) return;

    const float inv_det = 1.f / g.det;
    a.conics[3 * row] = g.syy * inv_det;
    a.conics[3 * row + 1] = -g.sxy * inv_det;
    a.conics[3 * row + 2] = g.sxx * inv_det;
    a.means2d[2 * row] = mx;
    a.means2d[2 * row + 1] = my;
    a.depths[row] = z;
    a.opacities[row] = g.opacity;

    const float* coeffs = a.sh + int64_t(a.sh_coeffs) * 3 * i;
    float d[3], len;
    view_direction(cam, a.means + 3 * i, d, len);
    float basis[16], v[3];
    sh_colour<kDegree>(d, coeffs, basis, v);
#pragma unroll
    for (int ch = 0; ch < 3; ++ch) a.colors[3 * row + ch] = fmaxf(v[ch], 0.f);
    a.radii[2 * row] = int32_t(rx);
    a.radii[2 * row + 1] = int32_t(ry);
}

constexpr int kThreads = 256;         // forward projection block
constexpr int kProjectThreads = 128;  // backward block (its SH staging buffer: 128 x 49 floats)

// Gradient stores: one camera writes each Gaussian's gradient once (plain stores, culled ones get
// zeros, no memset needed); several cameras accumulate into zeroed buffers.
struct GradStore {
    bool accumulate;
    __device__ __forceinline__ void put(float* p, float v) const {
        if (accumulate) atomicAdd(p, v); else *p = v;
    }
};

// Gradients of one visible (camera, Gaussian) pair; sh_io: see the colour section.
template <int kDegree>
__device__ __forceinline__ void backward_one(const ProjectBackwardArgs& b, const GradStore& out, int c, int64_t i,
                                             int64_t idx, float* sh_io) {
    const ProjectArgs& a = b.fwd;
    constexpr int nb = (kDegree + 1) * (kDegree + 1);
    const Camera cam = load_camera(a.viewmats, a.Ks, c);
    Projected g;
    project_one(a, cam, i, g);
    const float x = g.p[0], y = g.p[1], z = g.p[2];
    const float rz = 1.f / z;
    float v_p[3] = {0.f, 0.f, b.v_depths[idx]};
    float v_mean[3] = {0.f, 0.f, 0.f};

    // Opacity = sigmoid(logit).
    out.put(b.v_opacity_logits + i, b.v_opacities[idx] * g.opacity * (1.f - g.opacity));

    // Colour = max(SH(d) + 0.5, 0). sh_io holds this Gaussian's coefficients on entry and their
    // gradients on exit (shared memory, stored coalesced by the caller).
    {
        float d[3], len;
        view_direction(cam, a.means + 3 * i, d, len);
        float basis[16], v_col[3];
        sh_colour<kDegree>(d, sh_io, basis, v_col);
#pragma unroll
        for (int ch = 0; ch < 3; ++ch) v_col[ch] = v_col[ch] >= 0.f ? b.v_colors[3 * idx + ch] : 0.f;
        float v_basis[16];
#pragma unroll
        for (int k = 0; k < nb; ++k) {
            v_basis[k] = 0.f;
#pragma unroll
            for (int ch = 0; ch < 3; ++ch) {
                v_basis[k] += sh_io[3 * k + ch] * v_col[ch];
                sh_io[3 * k + ch] = basis[k] * v_col[ch];
            }
        }
        if (kDegree > 0) {
            float vd[3];
            sh_basis_vjp(kDegree, d[0], d[1], d[2], v_basis, vd[0], vd[1], vd[2]);
            const float dot = vd[0] * d[0] + vd[1] * d[1] + vd[2] * d[2];
#pragma unroll
            for (int k = 0; k < 3; ++k) v_mean[k] += (vd[k] - d[k] * dot) / len;
        }
    }

    // Screen mean (fx x / z + cx, fy y / z + cy).
    const float v_mx = b.v_means2d[2 * idx], v_my = b.v_means2d[2 * idx + 1];
    v_p[0] += v_mx * cam.fx * rz;
    v_p[1] += v_my * cam.fy * rz;
    v_p[2] -= (v_mx * cam.fx * x + v_my * cam.fy * y) * rz * rz;

    // Conic = inverse of the 2D covariance (sxx, sxy, syy).
    const float inv = 1.f / g.det, inv2 = inv * inv;
    const float vc0 = b.v_conics[3 * idx], vc1 = b.v_conics[3 * idx + 1], vc2 = b.v_conics[3 * idx + 2];
    const float v_sxx = -vc0 * g.syy * g.syy * inv2 + vc1 * g.sxy * g.syy * inv2 + vc2 * (inv - g.sxx * g.syy * inv2);
    const float v_syy = vc0 * (inv - g.syy * g.sxx * inv2) + vc1 * g.sxy * g.sxx * inv2 - vc2 * g.sxx * g.sxx * inv2;
    const float v_sxy = 2.f * vc0 * g.sxy * g.syy * inv2 + vc1 * (-inv - 2.f * g.sxy * g.sxy * inv2) +
                        2.f * vc2 * g.sxx * g.sxy * inv2;

    // Sigma_2d = T T^T + eps I with T rows t0, t1 = J V.
    float v_t0[3], v_t1[3];
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        v_t0[k] = 2.f * v_sxx * g.t0[k] + v_sxy * g.t1[k];
        v_t1[k] = 2.f * v_syy * g.t1[k] + v_sxy * g.t0[k];
    }
    const float a0 = cam.fx * rz, b0 = cam.fx * g.tx * rz * rz;
    const float a1 = cam.fy * rz, b1 = cam.fy * g.ty * rz * rz;
    float v_V[9];
    float v_a0 = 0.f, v_b0 = 0.f, v_a1 = 0.f, v_b1 = 0.f;
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        v_V[k] = a0 * v_t0[k];
        v_V[3 + k] = a1 * v_t1[k];
        v_V[6 + k] = -b0 * v_t0[k] - b1 * v_t1[k];
        v_a0 += v_t0[k] * g.V[k];
        v_b0 -= v_t0[k] * g.V[6 + k];
        v_a1 += v_t1[k] * g.V[3 + k];
        v_b1 -= v_t1[k] * g.V[6 + k];
    }
    // a0 = fx / z, b0 = fx tx / z^2 (and the same for y).
    const float v_tx = v_b0 * cam.fx * rz * rz, v_ty = v_b1 * cam.fy * rz * rz;
    v_p[2] -= (v_a0 * cam.fx + v_a1 * cam.fy) * rz * rz;
    v_p[2] -= 2.f * (v_b0 * cam.fx * g.tx + v_b1 * cam.fy * g.ty) * rz * rz * rz;
    // tx = z clamp(x / z): x itself inside the frustum margin, z * limit outside it.
    if (g.clamp_x) v_p[2] += v_tx * g.tx * rz; else v_p[0] += v_tx;
    if (g.clamp_y) v_p[2] += v_ty * g.ty * rz; else v_p[1] += v_ty;

    // V = W R S: v_(RS)[j][k] = sum_r W[r][j] v_V[r][k]; then R and S.
    float v_R[9], v_s[3] = {0.f, 0.f, 0.f};
#pragma unroll
    for (int j = 0; j < 3; ++j)
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            const float v_m = cam.W[j] * v_V[k] + cam.W[3 + j] * v_V[3 + k] + cam.W[6 + j] * v_V[6 + k];
            v_R[3 * j + k] = v_m * g.s[k];
            v_s[k] += v_m * g.R[3 * j + k];
        }
#pragma unroll
    for (int k = 0; k < 3; ++k) out.put(b.v_log_scales + 3 * i + k, v_s[k] * g.s[k]);

    const float w = g.q[0], qx = g.q[1], qy = g.q[2], qz = g.q[3];
    float v_q[4];
    v_q[0] = 2.f * (-qz * v_R[1] + qy * v_R[2] + qz * v_R[3] - qx * v_R[5] - qy * v_R[6] + qx * v_R[7]);
    v_q[1] = 2.f * (qy * v_R[1] + qz * v_R[2] + qy * v_R[3] - 2.f * qx * v_R[4] - w * v_R[5] + qz * v_R[6] +
                    w * v_R[7] - 2.f * qx * v_R[8]);
    v_q[2] = 2.f * (-2.f * qy * v_R[0] + qx * v_R[1] + w * v_R[2] + qx * v_R[3] + qz * v_R[5] - w * v_R[6] +
                    qz * v_R[7] - 2.f * qy * v_R[8]);
    v_q[3] = 2.f * (-2.f * qz * v_R[0] - w * v_R[1] + qx * v_R[2] + w * v_R[3] - 2.f * qz * v_R[4] + qy * v_R[5] +
                    qx * v_R[6] + qy * v_R[7]);
    const float qdot = v_q[0] * g.q[0] + v_q[1] * g.q[1] + v_q[2] * g.q[2] + v_q[3] * g.q[3];
#pragma unroll
    for (int k = 0; k < 4; ++k) out.put(b.v_quats + 4 * i + k, (v_q[k] - g.q[k] * qdot) / g.qnorm);

    // p = W mean + t.
#pragma unroll
    for (int k = 0; k < 3; ++k)
        out.put(b.v_means + 3 * i + k, v_mean[k] + cam.W[k] * v_p[0] + cam.W[3 + k] * v_p[1] + cam.W[6 + k] * v_p[2]);
}

// Shared-memory row stride of a Gaussian's SH values: odd, so that 32 threads reading "their" k-th
// value hit 32 different banks.
template <int kDegree>
__host__ __device__ constexpr int sh_stride() { return 3 * (kDegree + 1) * (kDegree + 1) | 1; }

// One thread per (camera, Gaussian). SH coefficients are staged through shared memory so that
// global reads and writes of the [N, K, 3] arrays are coalesced (a thread's own 48 floats are
// 192 bytes apart from its neighbour's).
template <int kDegree>
__global__ void __launch_bounds__(kProjectThreads) project_backward_kernel(ProjectBackwardArgs b) {
    const ProjectArgs& a = b.fwd;
    extern __shared__ float s_sh[];
    constexpr int per = 3 * (kDegree + 1) * (kDegree + 1);
    constexpr int stride = sh_stride<kDegree>();
    const int k3 = 3 * a.sh_coeffs;
    const int64_t total = int64_t(a.num_cameras) * a.num_gaussians;
    const int64_t block0 = int64_t(blockIdx.x) * blockDim.x;
    __shared__ int64_t s_gaussian[kProjectThreads];  // Gaussian of each slot (one division per thread)
    s_gaussian[threadIdx.x] = (block0 + threadIdx.x) % a.num_gaussians;
    __syncthreads();
    for (int e = threadIdx.x; e < int(blockDim.x) * per; e += blockDim.x) {
        const int slot = e / per, r = e - slot * per;
        if (block0 + slot < total) s_sh[slot * stride + r] = a.sh[s_gaussian[slot] * k3 + r];
    }
    __syncthreads();

    const int64_t idx = block0 + threadIdx.x;
    const GradStore out{a.num_cameras > 1};
    float* mine = s_sh + threadIdx.x * stride;
    if (idx < total) {
        const int c = int(idx / a.num_gaussians);
        const int64_t i = idx - int64_t(c) * a.num_gaussians;
        const int64_t row = int64_t(c) * a.stride + a.offset + i;
        if (a.radii[2 * row] == 0 && a.radii[2 * row + 1] == 0) {  // culled: no gradient
            for (int k = 0; k < per; ++k) mine[k] = 0.f;
            if (!out.accumulate) {
                for (int k = 0; k < 3; ++k) b.v_means[3 * i + k] = b.v_log_scales[3 * i + k] = 0.f;
                for (int k = 0; k < 4; ++k) b.v_quats[4 * i + k] = 0.f;
                b.v_opacity_logits[i] = 0.f;
            }
        } else {
            backward_one<kDegree>(b, out, c, i, idx, mine);
        }
    }
    __syncthreads();
    // Coalesced store of the block's SH gradients (zeros above the rendered degree).
    for (int e = threadIdx.x; e < int(blockDim.x) * k3; e += blockDim.x) {
        const int slot = e / k3, r = e - slot * k3;
        if (block0 + slot >= total) break;
        const float v = r < per ? s_sh[slot * stride + r] : 0.f;
        float* dst = b.v_sh + s_gaussian[slot] * k3 + r;
        if (!out.accumulate) *dst = v;
        else if (v != 0.f) atomicAdd(dst, v);
    }
}

}  // namespace

cudaError_t project_forward(const ProjectArgs& args, cudaStream_t stream) {
    const int64_t n = int64_t(args.num_cameras) * args.num_gaussians;
    if (n == 0) return cudaSuccess;
    const unsigned blocks = unsigned(ceil_div(n, kThreads));
    switch (args.sh_degree) {
        case 0: project_forward_kernel<0><<<blocks, kThreads, 0, stream>>>(args); break;
        case 1: project_forward_kernel<1><<<blocks, kThreads, 0, stream>>>(args); break;
        case 2: project_forward_kernel<2><<<blocks, kThreads, 0, stream>>>(args); break;
        case 3: project_forward_kernel<3><<<blocks, kThreads, 0, stream>>>(args); break;
        default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

cudaError_t project_backward(const ProjectBackwardArgs& args, cudaStream_t stream) {
    const int64_t n = int64_t(args.fwd.num_cameras) * args.fwd.num_gaussians;
    if (n == 0) return cudaSuccess;
    const unsigned blocks = unsigned(ceil_div(n, kProjectThreads));
    switch (args.fwd.sh_degree) {
        case 0: project_backward_kernel<0><<<blocks, kProjectThreads, kProjectThreads * sh_stride<0>() * sizeof(float), stream>>>(args); break;
        case 1: project_backward_kernel<1><<<blocks, kProjectThreads, kProjectThreads * sh_stride<1>() * sizeof(float), stream>>>(args); break;
        case 2: project_backward_kernel<2><<<blocks, kProjectThreads, kProjectThreads * sh_stride<2>() * sizeof(float), stream>>>(args); break;
        case 3: project_backward_kernel<3><<<blocks, kProjectThreads, kProjectThreads * sh_stride<3>() * sizeof(float), stream>>>(args); break;
        default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

}  // namespace adlift
