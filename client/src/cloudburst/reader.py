"""Reading an ensemble's results back from InfluxDB: status records, failures, series and summaries."""
from __future__ import annotations

import pandas as pd

from cloudburst import resultformat as fmt
from cloudburst.errors import InputError
from cloudburst.influx import InfluxQuery


class ResultsReader:
    def __init__(self, influx: InfluxQuery):
        self.influx = influx

    def members_with_status(self, name: str, state: str) -> set[int]:
        frame = self.influx.frame(fmt.status_query(name, state))
        return set(frame[fmt.MEMBER_TAG].astype(int)) if not frame.empty else set()

    def recorded_failures(self, name: str) -> dict[int, str]:
        """Each member whose status record says failed, with its reason."""
        frame = self.influx.frame(fmt.status_query(name, fmt.FAILED, field=fmt.ERROR_FIELD))
        if frame.empty:
            return {}
        return dict(zip(frame[fmt.MEMBER_TAG].astype(int), frame[fmt.ERROR_FIELD]))

    def executions(self, name: str) -> dict[int, int]:
        """How many executions of each member reached InfluxDB (a member run twice counts 2)."""
        frame = self.influx.frame(fmt.executions_query(name))
        return {} if frame.empty else dict(zip(frame[fmt.MEMBER_TAG].astype(int), frame["count"].astype(int)))

    def series(self, name: str, kind: str, element: str, attribute: str, member: int | None = None) -> pd.DataFrame:
        """One row per member and report time: ``member``, ``time`` (Unix seconds), ``value``."""
        if kind not in fmt.SERIES_MEASUREMENTS:
            raise InputError(f"element kind {kind!r} is not one of {', '.join(fmt.SERIES_MEASUREMENTS)}")
        frame = self.influx.frame(fmt.series_query(name, kind, element, attribute, member))
        if frame.empty:
            which = f"member {member}" if member is not None else f"ensemble {name!r}"
            raise InputError(f"no {attribute} series for {kind} {element} in {which} (did its output ask for "
                             "series of that element?)")
        frame = frame.rename(columns={attribute: "value"})
        frame["member"] = frame[fmt.MEMBER_TAG].astype(int)
        return frame[["member", "time", "value"]].sort_values(["member", "time"]).reset_index(drop=True)

    def summaries(self, name: str) -> pd.DataFrame:
        """One row per finished member, worst (lowest minimum pressure) first."""
        frame = self.influx.frame(fmt.summary_query(name))
        if frame.empty:
            raise InputError(f"no summaries for ensemble {name!r} yet")
        frame = frame.drop(columns=[column for column in ("time", fmt.ENSEMBLE_TAG) if column in frame.columns])
        frame[fmt.MEMBER_TAG] = frame[fmt.MEMBER_TAG].astype(int)
        return frame.sort_values([fmt.RANKING_FIELD, fmt.MEMBER_TAG]).reset_index(drop=True)
