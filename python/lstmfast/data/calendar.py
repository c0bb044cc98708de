"""What a series' dates say: its frequency, the seasons that go with it, and calendar features.

Frequency, from the median spacing of the dates (ISO dates or date-times):

    spacing      frequency   seasons (steps)        default horizon
    1 hour       hourly      24 (a day), 168 (a week)        48
    1 day        daily       7 (a week), 364, 365            56
    7 days       weekly      52                              52
    28-31 days   monthly     12                              24
    89-92 days   quarterly   4                               8
    365-366 d.   yearly      none                            10

364 days are 52 whole weeks: a daily series with a weekly rhythm (births, traffic, sales)
repeats its weekday there, which 365 days do not.

Calendar features of a step (all known in advance, so also for the steps to forecast):
hour of day and day of week (hourly), day of week and day of year (daily), week of year
(weekly), month (monthly); each cyclic quantity q of period P as the pair
(sin 2πq/P, cos 2πq/P), so that the last day of a period sits next to the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Frequency", "infer_frequency", "calendar_features", "future_dates"]


@dataclass(frozen=True)
class Frequency:
    name: str
    seasons: tuple
    horizon: int
    step: np.timedelta64 | None = None  # spacing of the dates (None: months, quarters, unknown)

    @property
    def season(self):
        """The main season: the first (for Holt-Winters), or None."""
        return self.seasons[0] if self.seasons else None


UNKNOWN = Frequency("unknown", (), 12)


def _parse(dates):
    try:
        parsed = np.array(list(dates), dtype="datetime64[m]")
    except (ValueError, TypeError):
        return None
    return parsed if len(parsed) >= 2 and not np.isnat(parsed).any() else None


def infer_frequency(dates) -> Frequency:
    """The Frequency of a series from its dates (strings); UNKNOWN when they are not dates."""
    parsed = _parse(dates)
    if parsed is None:
        return UNKNOWN
    minutes = float(np.median(np.diff(parsed).astype(np.int64)))
    hours, days = minutes / 60, minutes / 1440
    if abs(hours - 1) < 0.01:
        return Frequency("hourly", (24, 168), 48, np.timedelta64(1, "h"))
    if abs(days - 1) < 0.01:
        return Frequency("daily", (7, 364, 365), 56, np.timedelta64(1, "D"))
    if abs(days - 7) < 0.01:
        return Frequency("weekly", (52,), 52, np.timedelta64(7, "D"))
    if 27.5 <= days <= 31.5:
        return Frequency("monthly", (12,), 24)
    if 88.5 <= days <= 92.5:
        return Frequency("quarterly", (4,), 8)
    if 364.5 <= days <= 366.5:
        return Frequency("yearly", (), 10)
    return UNKNOWN


def _cyclic(name, q, period):
    a = 2 * np.pi * np.asarray(q, np.float64) / period
    return [f"{name}_sin", f"{name}_cos"], [np.sin(a), np.cos(a)]


def calendar_features(dates, frequency: Frequency):
    """(names, values (N, k)) of the calendar features of `dates` for `frequency`; no columns
    for an unknown or yearly frequency."""
    parsed = _parse(dates) if len(dates) >= 2 else np.array(list(dates), dtype="datetime64[m]")
    names, cols = [], []
    if parsed is None or frequency.name in ("unknown", "yearly"):
        return names, np.zeros((len(dates), 0))
    days = parsed.astype("datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday: Monday is 0
    year_start = days.astype("datetime64[Y]").astype("datetime64[D]")
    day_of_year = (days - year_start).astype(np.int64)
    month = days.astype("datetime64[M]").astype(np.int64) % 12
    parts = {
        "hourly": [("hour", (parsed - days).astype("timedelta64[h]").astype(np.int64), 24),
                   ("weekday", weekday, 7)],
        "daily": [("weekday", weekday, 7), ("day_of_year", day_of_year, 365.25)],
        "weekly": [("week_of_year", day_of_year / 7, 365.25 / 7)],
        "monthly": [("month", month, 12)],
        "quarterly": [("quarter", month // 3, 4)],
    }[frequency.name]
    for name, q, period in parts:
        n, c = _cyclic(name, q, period)
        names += n
        cols += c
    return names, np.stack(cols, axis=1)


def future_dates(dates, frequency: Frequency, h):
    """The `h` dates after the last of `dates` (ISO strings), or None when they cannot be known."""
    parsed = _parse(dates)
    if parsed is None:
        return None
    last = parsed[-1]
    if frequency.step is not None:
        out = last + frequency.step * np.arange(1, h + 1)
    elif frequency.name in ("monthly", "quarterly"):
        months = 1 if frequency.name == "monthly" else 3
        day = last.astype("datetime64[D]") - last.astype("datetime64[M]").astype("datetime64[D]")
        out = (last.astype("datetime64[M]") + months * np.arange(1, h + 1)).astype("datetime64[D]") + day
    else:
        return None
    unit = "D" if frequency.name != "hourly" else "m"
    return [str(d) for d in out.astype(f"datetime64[{unit}]")]
