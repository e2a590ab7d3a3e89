# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""What the CPU offers for reduced precision, read from /proc/cpuinfo."""
import os.path as osp
import platform
import re
from typing import Set, Tuple

#: flags that let int8 products accumulate without saturating (VNNI, AMX)
INT8_DOT_PRODUCT = ('avx512_vnni', 'avx_vnni', 'amx_int8')


def cpu_info(cpuinfo: str = '/proc/cpuinfo') -> Tuple[str, Set[str]]:
    """The CPU's model name and its flags (empty off Linux)."""
    name, flags = platform.processor() or platform.machine(), set()
    if osp.isfile(cpuinfo):
        with open(cpuinfo) as f:
            info = f.read()
        match = re.search(r'model name\s*:\s*(.*)', info)
        name = match.group(1).strip() if match else name
        match = re.search(r'flags\s*:\s*(.*)', info)
        flags = set(match.group(1).split()) if match else set()
    return name, flags


def int8_saturates(cpuinfo: str = '/proc/cpuinfo') -> bool:
    """Whether int8 convolutions here run on AVX2/AVX-512 without VNNI,
    whose 16-bit intermediate sums saturate with 8-bit weights: quantizers
    then keep weights to 7 bits (ONNX Runtime's ``reduce_range``, NNCF's
    overflow fix)."""
    return not set(INT8_DOT_PRODUCT) & cpu_info(cpuinfo)[1]
