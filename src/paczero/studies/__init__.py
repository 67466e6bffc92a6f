"""Studies: many ordinary runs from one spec, and what is read out of them.

``spec`` reads a sweep spec into cells and seeds, ``folder`` keeps the sweep folder
(``sweep.json``, its lock), ``state`` sees each run through ``paczero.runs``, ``worker``
does one run, ``scheduler`` runs them J at a time (`paczero sweep`); ``tables`` and
``plots`` turn the finished runs into `paczero table` and `paczero plot`.
"""
