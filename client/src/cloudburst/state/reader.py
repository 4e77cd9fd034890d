"""Reading an ensemble's results back: members' rows and series from the store, statistics from InfluxDB."""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa

from cloudburst.errors import InputError
from cloudburst.schema import resultformat as fmt
from cloudburst.schema.resultformat import decode
from cloudburst.state.influx import InfluxQuery
from cloudburst.state.ledger import retry_round
from cloudburst.state.store import MEMBERS_DIR, SERIES_DIR, ResultsStore


def member_rows(store: ResultsStore, name: str, batches: Iterable[str]) -> pd.DataFrame:
    """The members rows of these batches, one per member: a finished row wins over a failed one, and otherwise
    the latest retry round's."""
    tables = [decode(data) for batch in sorted(batches, key=retry_round)
              if (data := store.read(name, MEMBERS_DIR, batch)) is not None]
    if not tables:
        return pd.DataFrame(columns=[fmt.MEMBER, fmt.BATCH, fmt.STATUS, fmt.ERROR])
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    finished_last = frame.assign(_done=frame[fmt.STATUS] == fmt.FINISHED).sort_values("_done", kind="stable")
    return finished_last.drop_duplicates(fmt.MEMBER, keep="last").drop(columns="_done").sort_values(
        fmt.MEMBER).reset_index(drop=True)


class ResultsReader:
    def __init__(self, store: ResultsStore, influx: InfluxQuery):
        self.store = store
        self.influx = influx

    def members(self, name: str) -> pd.DataFrame:
        """One row per member that ran to a status (its latest), from every committed batch."""
        return member_rows(self.store, name, self.store.batches(name))

    def summaries(self, name: str) -> pd.DataFrame:
        """One row per finished member, worst (lowest minimum pressure) first."""
        frame = self.members(name)
        frame = frame[frame[fmt.STATUS] == fmt.FINISHED]
        if frame.empty:
            raise InputError(f"no finished members in ensemble {name!r} yet")
        return frame.sort_values([fmt.RANKING_FIELD, fmt.MEMBER]).reset_index(drop=True)

    def series(self, name: str, kind: str, element: str, attribute: str,
               batches: Iterable[str] | None = None, member: int | None = None) -> pd.DataFrame:
        """One row per member and report time: ``member``, ``elapsed_s``, ``value``, from the named batches (default:
        all), one member's when asked."""
        if kind not in fmt.SERIES_KINDS:
            raise InputError(f"element kind {kind!r} is not one of {', '.join(fmt.SERIES_KINDS)}")
        wanted: list[tuple[str, str, str | int]] = [(fmt.KIND, "=", kind), (fmt.ATTRIBUTE, "=", attribute),
                                                    (fmt.ELEMENT, "=", element)]
        if member is not None:
            wanted.append((fmt.MEMBER, "=", member))
        committed = set(self.store.batches(name))
        names = committed if batches is None else committed & set(batches)
        tables = [decode(data, [fmt.MEMBER, fmt.ELAPSED, fmt.VALUE], wanted)
                  for batch in sorted(names) if (data := self.store.read(name, SERIES_DIR, batch)) is not None]
        frame = (pa.concat_tables(tables, promote_options="permissive").to_pandas() if tables
                 else pd.DataFrame(columns=[fmt.MEMBER, fmt.ELAPSED, fmt.VALUE]))
        if frame.empty:
            which = f"member {member}" if member is not None else f"ensemble {name!r}"
            raise InputError(f"no {attribute} series for {kind} {element} in {which} (did its output ask for "
                             "series of that element, and has the member finished?)")
        frame = frame.drop_duplicates([fmt.MEMBER, fmt.ELAPSED], keep="last")  # a member stored by a retry
        return frame.sort_values([fmt.MEMBER, fmt.ELAPSED]).reset_index(drop=True)

    def element_stats(self, name: str, kind: str, element: str, attribute: str) -> pd.DataFrame:
        """The cluster's statistics of one element: a row per time, a column per statistic."""
        frame = self.influx.frame(fmt.element_stats_query(name, kind, element, attribute))
        if frame.empty:
            raise InputError(f"no statistics of {attribute} at {kind} {element} in ensemble {name!r} (yet: they "
                             "follow the first batches; did its output ask for series of that element?)")
        table = frame.pivot_table(index="time", columns=fmt.STATISTIC_TAG, values=attribute, aggfunc="first")
        table.columns.name = None
        return table.reset_index()

    def statistic(self, name: str, kind: str, attribute: str, statistic: str) -> pd.DataFrame:
        """One statistic of an attribute at every element and time: columns time, element, <attribute>."""
        return self.influx.frame(fmt.statistic_query(name, kind, attribute, statistic))
