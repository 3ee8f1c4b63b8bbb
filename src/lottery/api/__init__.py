"""Your own model and data, from Python.

    import lottery
    ticket = lottery.find_ticket(lambda: MyNet(), train=(x, y), test=(x_test, y_test), levels=5)
    ticket.verdict          # is there a matching ticket, how sparse, how sure (as `lottery run` prints)
    ticket.results          # the tidy table, the columns of results.csv
    net = ticket.module()   # your model holding the verdict's ticket, its mask attached
    lottery.bake(net)       # the mask made part of the weights

    find.py        find_ticket
    user_model.py  your network afresh for any seed, with your initialisation
    identity.py    what makes a run the same run: your model's code, initial values, data
    ticket.py      Ticket (table, verdict, masks, modules); bake is lottery.sparse.masks.bake
"""

from lottery.api.find import find_ticket
from lottery.api.ticket import Ticket
from lottery.sparse.masks import bake

__all__ = ["Ticket", "bake", "find_ticket"]
