#!/usr/bin/env bash
# Build, test and benchmark the CUDA rasteriser on a GPU machine, in one go:
#
#   bash cuda/tools/gpu_session.sh [build] [test] [gsplat] [memcheck] [bench] [fitting] [profile] [ncu] [protect-scale]
#
# protect-scale: benchmarks/distributed.py --part scale (InstructPix2Pix's full architecture, random weights,
# 500k Gaussians, 40 views at 512^2, default settings) on 1 GPU and, with 2 GPUs, on 2 (torchrun, NCCL).
#
# Logs and JSON land in $OUT (default /tmp/adlift-gpu). gsplat, when requested, is imported (and
# JIT-built on first use) from the Python path; its build runs in the background meanwhile.
set -uo pipefail
OUT=${OUT:-/tmp/adlift-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-/tmp/torch-ext}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-12}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
steps=" ${*:-build test} "
has() { [[ "$steps" == *" $1 "* ]]; }
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
if has gsplat; then
    (python3 -c "import gsplat.cuda._backend as b; assert b._C is not None; print('gsplat ready')" \
        > "$OUT/gsplat_build.log" 2>&1) &
    gsplat_pid=$!
fi
if has build; then
    start=$SECONDS
    python3 -m adlift.render.cuda_build --verbose > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
    echo "built adlift_cuda in $((SECONDS - start)) s"
fi
if has test; then
    python3 -m pytest -q -x tests/test_cuda_rasterizer.py tests/test_render_parity.py -k "not memcheck and not gsplat" \
        2>&1 | tee "$OUT/tests.log" | tail -25; [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
if has gsplat; then
    wait "$gsplat_pid"; tail -3 "$OUT/gsplat_build.log"
    python3 -m pytest -q tests/test_cuda_rasterizer.py tests/test_render_parity.py -k "gsplat" 2>&1 \
        | tee "$OUT/tests_gsplat.log" | tail -15 || status=1
fi
if has memcheck; then
    python3 -m pytest -q tests/test_cuda_rasterizer.py -k memcheck 2>&1 | tee "$OUT/memcheck.log" | tail -8 || status=1
fi
if has bench; then
    python3 benchmarks/render.py --counts 100000 1000000 --sizes 512 1024 --repeats 10 --backends cuda gsplat torch \
        --out "$OUT/render.json" 2>&1 | tail -12 || status=1
fi
if has fitting; then
    python3 benchmarks/render.py --fitting --sizes 1024 --repeats 20 --out "$OUT/fitting.json" 2>&1 | tail -12 || status=1
fi
if has ncu; then  # DRAM bytes and time per kernel of one fitting step (cuda split), clocks as found
    ncu --csv --clock-control none --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum \
        -k regex:"_kernel|Kernel" python3 benchmarks/profile_fitting.py --cases cuda:split --steps 1 \
        > "$OUT/ncu.csv" 2> "$OUT/ncu.err" || { status=1; tail -5 "$OUT/ncu.err"; }
    echo "ncu: $(grep -c dram__bytes_read "$OUT/ncu.csv") kernel rows"
fi
if has profile; then
    python3 benchmarks/profile_fitting.py 2>&1 | tee "$OUT/profile.log" | grep -E "^===|adlift|Radix|Scan|gsplat::|Self CUDA" | cut -c1-60,140-175 | head -60
fi
if has protect-scale; then
    python3 benchmarks/distributed.py --part scale --out "$OUT/distributed-scale.json" 2>&1 | tail -8 || status=1
fi
exit $status
