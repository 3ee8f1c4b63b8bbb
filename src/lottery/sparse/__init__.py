"""Cashing in the ticket: a file to keep it in, and sparse inference that is measurably faster.

    ticket_file.py  the ticket as one small, checked safetensors file; `load_ticket` rebuilds it
    kernels.py      the sparse kernels: one fused call for a whole ReLU MLP, one per layer otherwise
    compile.py      `compile(module)`: each pruned layer sparse where that measures faster
    masks.py        masks on modules in torch.nn.utils.prune's convention: attach, bake

    net = lottery.load_ticket("ticket.safetensors")
    fast = lottery.sparse.compile(net, batch_size=64)   # the same outputs, to float rounding
"""

from lottery.sparse.compile import compile
from lottery.sparse.ticket_file import load as load_ticket
from lottery.sparse.ticket_file import read as read_ticket
from lottery.sparse.ticket_file import write as write_ticket

__all__ = ["compile", "load_ticket", "read_ticket", "write_ticket"]
