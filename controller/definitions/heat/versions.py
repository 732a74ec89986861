"""HOT template versions and the functions each one has, as Heat's
``heat/engine/hot/template.py`` defines them.

A template version is a date, or (since Heat's newton) a release name for
one. A function belongs to every version from the one that introduced it;
a one-key mapping whose key is a function of a later version is plain data
in an older template, as in Heat.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every version Heat knows, oldest first.
DATES = (
    "2013-05-23", "2014-10-16", "2015-04-30", "2015-10-15", "2016-04-08",
    "2016-10-14", "2017-02-24", "2017-09-01", "2018-03-02", "2018-08-31",
    "2021-04-16",
)  # fmt: skip
NAMES = {
    "newton": "2016-10-14",
    "ocata": "2017-02-24",
    "pike": "2017-09-01",
    "queens": "2018-03-02",
    "rocky": "2018-08-31",
    "wallaby": "2021-04-16",
}

# The version that introduced each function of resources and outputs.
FUNCTIONS = {
    "get_attr": "2013-05-23",
    "get_file": "2013-05-23",
    "get_param": "2013-05-23",
    "get_resource": "2013-05-23",
    "list_join": "2013-05-23",
    "str_replace": "2013-05-23",
    "digest": "2015-04-30",
    "repeat": "2015-04-30",
    "str_split": "2015-10-15",
    "map_merge": "2016-04-08",
    "if": "2016-10-14",
    "map_replace": "2016-10-14",
    "yaql": "2016-10-14",
    "filter": "2017-02-24",
    "str_replace_strict": "2017-02-24",
    "contains": "2017-09-01",
    "list_concat": "2017-09-01",
    "list_concat_unique": "2017-09-01",
    "make_url": "2017-09-01",
    "str_replace_vstrict": "2017-09-01",
}
# The functions of the ``conditions`` section (and of a ``condition:``).
CONDITION_FUNCTIONS = {
    "get_param": "2016-10-14",
    "equals": "2016-10-14",
    "not": "2016-10-14",
    "and": "2016-10-14",
    "or": "2016-10-14",
    "contains": "2017-09-01",
    "yaql": "2017-09-01",
}
# Functions of HOT (or of CloudFormation templates) setpoint never evaluates:
# each is an error naming it, never data.
NOT_EVALUATED = (
    "resource_facade", "Fn::GetAtt", "Fn::Select", "Fn::Join", "Fn::Split", "Fn::Replace",
    "Fn::Base64", "Fn::GetAZs", "Fn::MemberListToMap", "Fn::ResourceFacade", "Ref",
)  # fmt: skip


@dataclass(frozen=True)
class TemplateVersion:
    """One template's version: which functions it has and how some behave."""

    date: str

    def has(self, function: str) -> bool:
        since = FUNCTIONS.get(function)
        return since is not None and self.date >= since

    def has_condition(self, function: str) -> bool:
        since = CONDITION_FUNCTIONS.get(function)
        return since is not None and self.date >= since

    @property
    def conditions(self) -> bool:
        """``conditions:`` and ``condition:`` exist from 2016-10-14 (newton)."""
        return self.date >= "2016-10-14"

    @property
    def repeat_over_maps(self) -> bool:
        """``repeat`` iterates a map's keys from 2016-10-14."""
        return self.date >= "2016-10-14"

    @property
    def repeat_permutations(self) -> bool:
        """``repeat`` takes ``permutations: false`` (zip, not product) from 2017-09-01."""
        return self.date >= "2017-09-01"

    @property
    def if_without_else(self) -> bool:
        """``if: [condition, value]`` (no value when false) from 2021-04-16 (wallaby)."""
        return self.date >= "2021-04-16"

    @property
    def str_replace_json(self) -> bool:
        """``str_replace`` puts maps and lists in as JSON from 2015-10-15 (before: an error)."""
        return self.date >= "2015-10-15"


def template_version(written: object) -> TemplateVersion | None:
    """The version a template declares, or ``None`` when Heat knows no such version."""
    text = str(written)
    date = NAMES.get(text, text)
    return TemplateVersion(date) if date in DATES else None


def known_versions() -> str:
    """Every version Heat knows, for an error message."""
    named = {date: name for name, date in NAMES.items()}
    return ", ".join(f"{d} ({named[d]})" if d in named else d for d in DATES)


def since(function: str, in_conditions: bool = False) -> str | None:
    """The version that introduced ``function`` (in conditions, or anywhere)."""
    table = CONDITION_FUNCTIONS if in_conditions else FUNCTIONS
    return table.get(function)
