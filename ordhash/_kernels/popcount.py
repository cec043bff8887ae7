"""Population count for Numba through the LLVM ``ctpop`` intrinsic.

Numba has no popcount in nopython mode (``int.bit_count`` and ``np.bitwise_count`` are not
supported there), so :func:`popcount` lowers directly to ``llvm.ctpop.iN`` for the integer
width it is called with. Intrinsics are resolved at compile time, which keeps every kernel
that uses them eligible for ``cache=True``.
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from llvmlite import ir


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of an integer ``x`` (any width), as the same integer type."""
    if not isinstance(x, types.Integer):
        return None
    sig = x(x)

    def codegen(context, builder, signature, args):
        (val,) = args
        llty = val.type
        fnty = ir.FunctionType(llty, [llty])
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.ctpop.i{llty.width}")
        return builder.call(fn, [val])

    return sig, codegen
