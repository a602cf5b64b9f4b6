// Tile binning: count the tiles each screen box touches, prefix-sum the counts, write one
// (camera/tile/depth key, row) pair per intersection, radix-sort the pairs (CUB) and find the
// [first, end) range of every tile in the sorted list.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "common.cuh"

namespace adlift {
namespace {

constexpr int kThreads = 256;

__global__ void count_tiles_kernel(TileGrid grid, const float* means2d, const int32_t* radii, int64_t* counts) {
    const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (row >= int64_t(grid.num_cameras) * grid.points) return;
    const int rx = radii[2 * row], ry = radii[2 * row + 1];
    if (rx == 0 && ry == 0) {
        counts[row] = 0;
        return;
    }
    counts[row] = tile_box(means2d[2 * row], means2d[2 * row + 1], rx, ry, grid.tiles_x, grid.tiles_y).count();
}

__global__ void write_intersections_kernel(TileGrid grid, const float* means2d, const int32_t* radii,
                                           const float* depths, const int64_t* offsets, uint64_t* keys,
                                           int32_t* rows) {
    const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (row >= int64_t(grid.num_cameras) * grid.points) return;
    const int rx = radii[2 * row], ry = radii[2 * row + 1];
    if (rx == 0 && ry == 0) return;
    const TileBox box = tile_box(means2d[2 * row], means2d[2 * row + 1], rx, ry, grid.tiles_x, grid.tiles_y);
    const int64_t camera = row / grid.points;
    const int64_t tiles = int64_t(grid.tiles_x) * grid.tiles_y;
    // Depths of drawn rows are >= near_plane >= 0, so their float bits sort like the values.
    const uint64_t depth_bits = uint64_t(__float_as_uint(depths[row]));
    int64_t out = row == 0 ? 0 : offsets[row - 1];
    for (int ty = box.y0; ty < box.y1; ++ty) {
        for (int tx = box.x0; tx < box.x1; ++tx) {
            const uint64_t tile_key = uint64_t(camera * tiles + int64_t(ty) * grid.tiles_x + tx);
            keys[out] = (tile_key << 32) | depth_bits;
            rows[out] = int32_t(row);
            ++out;
        }
    }
}

__global__ void tile_ranges_kernel(const uint64_t* keys, int64_t n, int32_t* ranges) {
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= n) return;
    const int64_t tile = int64_t(keys[idx] >> 32);
    if (idx == 0) {
        ranges[2 * tile] = 0;
    } else {
        const int64_t prev = int64_t(keys[idx - 1] >> 32);
        if (prev != tile) {
            ranges[2 * prev + 1] = int32_t(idx);
            ranges[2 * tile] = int32_t(idx);
        }
    }
    if (idx == n - 1) ranges[2 * tile + 1] = int32_t(n);
}

unsigned blocks_for(int64_t n) { return unsigned(ceil_div(n, kThreads)); }

}  // namespace

cudaError_t count_tiles(const TileGrid& grid, const float* means2d, const int32_t* radii, int64_t* counts,
                        cudaStream_t stream) {
    const int64_t n = int64_t(grid.num_cameras) * grid.points;
    if (n == 0) return cudaSuccess;
    count_tiles_kernel<<<blocks_for(n), kThreads, 0, stream>>>(grid, means2d, radii, counts);
    return cudaGetLastError();
}

cudaError_t inclusive_scan(void* temp, size_t& temp_bytes, const int64_t* counts, int64_t* offsets, int64_t n,
                           cudaStream_t stream) {
    return cub::DeviceScan::InclusiveSum(temp, temp_bytes, counts, offsets, n, stream);
}

cudaError_t write_intersections(const TileGrid& grid, const float* means2d, const int32_t* radii,
                                const float* depths, const int64_t* offsets, uint64_t* keys, int32_t* rows,
                                cudaStream_t stream) {
    const int64_t n = int64_t(grid.num_cameras) * grid.points;
    if (n == 0) return cudaSuccess;
    write_intersections_kernel<<<blocks_for(n), kThreads, 0, stream>>>(grid, means2d, radii, depths, offsets, keys,
                                                                        rows);
    return cudaGetLastError();
}

cudaError_t sort_intersections(void* temp, size_t& temp_bytes, uint64_t* keys[2], int32_t* rows[2], int64_t n,
                               int end_bit, int& selector, cudaStream_t stream) {
    cub::DoubleBuffer<uint64_t> key_buf(keys[0], keys[1]);
    cub::DoubleBuffer<int32_t> row_buf(rows[0], rows[1]);
    const cudaError_t err = cub::DeviceRadixSort::SortPairs(temp, temp_bytes, key_buf, row_buf, n, 0, end_bit, stream);
    selector = key_buf.selector;
    return err;
}

cudaError_t tile_ranges(const uint64_t* sorted_keys, int64_t n, int32_t* ranges, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    tile_ranges_kernel<<<blocks_for(n), kThreads, 0, stream>>>(sorted_keys, n, ranges);
    return cudaGetLastError();
}

}  // namespace adlift
