// upfirdn2d: zero-insertion upsampling, padding, FIR filtering and downsampling in
// one pass. No upsampled or padded intermediate is ever written: each output sample
// visits only the taps that land on real (non-inserted) input samples.
//
// Two kernels share that arithmetic:
// - tiled: a block stages the input window of a 32x32 output tile in shared memory
//   (zeros outside the image), then reads taps from there. Used for large outputs.
// - direct: one thread per output sample reading global memory with bounds checks.
//   Used for small outputs (tiles would idle most threads) and for configurations
//   whose window does not fit in shared memory (large factors or kernels).
#include "element.cuh"
#include "kernels.h"

namespace gcgan {
namespace {

constexpr int kTile = 32;        // output tile edge of the tiled kernel
constexpr int kTileRows = 8;     // thread rows per tile; each thread does kTile / kTileRows rows
constexpr int kMaxShared = 48 * 1024;

__host__ __device__ __forceinline__ int floor_div(int a, int b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// Smallest a >= 0 with (base + a) a multiple of `up`.
__device__ __forceinline__ int phase(int base, int up) {
  const int r = base % up;
  return r == 0 ? 0 : (r > 0 ? up - r : -r);
}

// Input window a tile needs along one axis: at most this many samples.
__host__ __device__ __forceinline__ int window(int tile, int down, int taps, int up) {
  return ((tile - 1) * down + taps - 1) / up + 2;
}

template <typename T, typename Index>
__global__ void upfirdn2d_direct(const T* __restrict__ x,
                                 const typename Element<T>::Acc* __restrict__ kernel,
                                 T* __restrict__ y, Upfirdn2dParams p, Index total) {
  using Acc = typename Element<T>::Acc;
  extern __shared__ unsigned char shared_raw[];
  Acc* taps = reinterpret_cast<Acc*>(shared_raw);
  const int n_taps = p.kernel_h * p.kernel_w;
  // Stored flipped: tap (a, b) weighs padded sample (i + a, j + b), which makes the
  // correlation below the true convolution the op is defined as.
  for (int t = threadIdx.x; t < n_taps; t += blockDim.x) taps[t] = kernel[n_taps - 1 - t];
  __syncthreads();

  const int up_h = p.in_h * p.up_y;
  const int up_w = p.in_w * p.up_x;
  const Index plane_size = static_cast<Index>(p.in_h) * p.in_w;
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index idx = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += stride) {
    const int ox = static_cast<int>(idx % p.out_w);
    const Index rest = idx / p.out_w;
    const int oy = static_cast<int>(rest % p.out_h);
    const Index plane = rest / p.out_h;
    // Position of tap 0 on the upsampled (unpadded) grid; taps before 0 or past the
    // upsampled image read padding, i.e. zero, and are skipped.
    const int base_y = oy * p.down_y - p.pad_y0;
    const int base_x = ox * p.down_x - p.pad_x0;
    const int a_end = min(p.kernel_h, up_h - base_y);
    const int b_end = min(p.kernel_w, up_w - base_x);
    const int a_start = base_y < 0 ? -base_y : phase(base_y, p.up_y);
    const int b_start = base_x < 0 ? -base_x : phase(base_x, p.up_x);
    const T* src = x + plane * plane_size;
    Acc acc = 0;
    for (int a = a_start; a < a_end; a += p.up_y) {
      const T* row = src + static_cast<Index>((base_y + a) / p.up_y) * p.in_w;
      const Acc* tap_row = taps + a * p.kernel_w;
      for (int b = b_start; b < b_end; b += p.up_x) {
        acc += Element<T>::load(row + (base_x + b) / p.up_x) * tap_row[b];
      }
    }
    Element<T>::store(y + idx, acc);
  }
}

template <typename T>
__global__ void upfirdn2d_tiled(const T* __restrict__ x,
                                const typename Element<T>::Acc* __restrict__ kernel,
                                T* __restrict__ y, Upfirdn2dParams p, int win_h, int win_w) {
  using Acc = typename Element<T>::Acc;
  extern __shared__ unsigned char shared_raw[];
  Acc* taps = reinterpret_cast<Acc*>(shared_raw);
  const int n_taps = p.kernel_h * p.kernel_w;
  Acc* win = taps + n_taps;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  const int n_threads = blockDim.x * blockDim.y;
  for (int t = tid; t < n_taps; t += n_threads) taps[t] = kernel[n_taps - 1 - t];

  const int oy0 = blockIdx.y * kTile;
  const int ox0 = blockIdx.x * kTile;
  // First input sample at or after the tile's first tap position, per axis.
  const int iy0 = floor_div(oy0 * p.down_y - p.pad_y0 + p.up_y - 1, p.up_y);
  const int ix0 = floor_div(ox0 * p.down_x - p.pad_x0 + p.up_x - 1, p.up_x);
  const long long plane_size = static_cast<long long>(p.in_h) * p.in_w;
  const long long out_plane = static_cast<long long>(p.out_h) * p.out_w;

  for (long long plane = blockIdx.z; plane < p.planes; plane += gridDim.z) {
    const T* src = x + plane * plane_size;
    __syncthreads();  // the previous plane's window is no longer read
    for (int t = tid; t < win_h * win_w; t += n_threads) {
      const int iy = iy0 + t / win_w;
      const int ix = ix0 + t % win_w;
      const bool inside = iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w;
      win[t] = inside ? Element<T>::load(src + static_cast<long long>(iy) * p.in_w + ix) : Acc(0);
    }
    __syncthreads();
    const int ox = ox0 + threadIdx.x;
    if (ox < p.out_w) {
      const int base_x = ox * p.down_x - p.pad_x0;
      const int b_start = phase(base_x, p.up_x);
      const int col = (base_x + b_start) / p.up_x - ix0;  // exact: a multiple of up_x
      for (int ly = threadIdx.y; ly < kTile; ly += kTileRows) {
        const int oy = oy0 + ly;
        if (oy >= p.out_h) break;
        const int base_y = oy * p.down_y - p.pad_y0;
        const int a_start = phase(base_y, p.up_y);
        int row = (base_y + a_start) / p.up_y - iy0;
        Acc acc = 0;
        for (int a = a_start; a < p.kernel_h; a += p.up_y, ++row) {
          const Acc* w_row = win + row * win_w + col;
          const Acc* tap_row = taps + a * p.kernel_w;
          int c = 0;
          for (int b = b_start; b < p.kernel_w; b += p.up_x, ++c) acc += w_row[c] * tap_row[b];
        }
        Element<T>::store(y + plane * out_plane + static_cast<long long>(oy) * p.out_w + ox, acc);
      }
    }
  }
}

template <typename T>
cudaError_t launch(const void* x, const void* kernel, void* y, const Upfirdn2dParams& p,
                   cudaStream_t stream) {
  using Acc = typename Element<T>::Acc;
  const long long total = p.planes * p.out_h * p.out_w;
  if (total == 0) return cudaSuccess;
  const T* xt = static_cast<const T*>(x);
  const Acc* kt = static_cast<const Acc*>(kernel);
  T* yt = static_cast<T*>(y);
  const size_t tap_bytes = sizeof(Acc) * p.kernel_h * p.kernel_w;

  const int win_h = window(kTile, p.down_y, p.kernel_h, p.up_y);
  const int win_w = window(kTile, p.down_x, p.kernel_w, p.up_x);
  const size_t tiled_bytes = tap_bytes + sizeof(Acc) * win_h * win_w;
  if (p.out_h >= kTile / 2 && p.out_w >= kTile / 2 && tiled_bytes <= kMaxShared) {
    const long long max_z = 65535;
    const dim3 grid((p.out_w + kTile - 1) / kTile, (p.out_h + kTile - 1) / kTile,
                    static_cast<unsigned int>(p.planes < max_z ? p.planes : max_z));
    upfirdn2d_tiled<T><<<grid, dim3(kTile, kTileRows), tiled_bytes, stream>>>(xt, kt, yt, p,
                                                                             win_h, win_w);
    return cudaGetLastError();
  }

  const long long in_size = static_cast<long long>(p.in_h) * p.in_w;
  const long long out_size = static_cast<long long>(p.out_h) * p.out_w;
  const long long largest = p.planes * (in_size > out_size ? in_size : out_size);
  const int threads = 256;
  const unsigned int blocks = grid_blocks(total, threads);
  if (largest < (1LL << 31)) {
    upfirdn2d_direct<T, int><<<blocks, threads, tap_bytes, stream>>>(xt, kt, yt, p,
                                                                     static_cast<int>(total));
  } else {
    upfirdn2d_direct<T, long long><<<blocks, threads, tap_bytes, stream>>>(xt, kt, yt, p, total);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t upfirdn2d_launch(DType dtype, const void* x, const void* kernel, void* y,
                             const Upfirdn2dParams& p, cudaStream_t stream) {
  switch (dtype) {
    case DType::F32: return launch<float>(x, kernel, y, p, stream);
    case DType::F64: return launch<double>(x, kernel, y, p, stream);
    case DType::F16: return launch<__half>(x, kernel, y, p, stream);
    case DType::BF16: return launch<__nv_bfloat16>(x, kernel, y, p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace gcgan
