"""HOT's intrinsic functions with Heat's semantics and error messages, each in a
template of the version that introduced it (and refused as a function before).

Every case is a template written for these tests: one SoftwareDeployment whose
input ``x`` holds the snippet under test; the loaded model's value of ``x`` is
Heat's result, or the problem names the template, line and function.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions, Problem
from tests.controller.conftest import RepoFactory

TEMPLATE = """\
heat_template_version: {version}
parameters:
  words: {{type: comma_delimited_list, default: "a,b,c"}}
  env: {{type: string, default: prod}}
  ports: {{type: json, default: {{http: 80, https: 443}}}}
conditions:
  is_prod: {{equals: [{{get_param: env}}, prod]}}
resources:
  s1:
    type: OS::Nova::Server
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      config: "#!/bin/sh"
  deployment:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {{get_resource: config}}
      server: {{get_resource: s1}}
      input_values:
        x:
{snippet}
"""
SNIPPET_LINE = 23  # the line of the snippet's first line in TEMPLATE


def template(snippet: str, version: str = "2018-08-31") -> str:
    body = textwrap.indent(textwrap.dedent(snippet).strip("\n"), " " * 10)
    text = TEMPLATE.format(version=version, snippet=body)
    if version < "2016-10-14":  # no conditions section before newton
        text = text.replace("conditions:\n  is_prod: {equals: [{get_param: env}, prod]}\n", "")
    return text


def load(make_repo: RepoFactory, snippet: str, version: str = "2018-08-31") -> Any:
    repo = make_repo({"stacks/t.yaml": template(snippet, version)})
    problems: list[Problem] = []
    with GitRepo.open(repo) as git:
        model = load_model(git.tree("HEAD"), on_problem=problems.append)
    return model.deployment("t/deployment").input_values["x"], problems


def value(make_repo: RepoFactory, snippet: str, version: str = "2018-08-31") -> Any:
    got, _warnings = load(make_repo, snippet, version)
    return got


def errors(make_repo: RepoFactory, snippet: str, version: str = "2018-08-31") -> list[str]:
    repo = make_repo({"stacks/t.yaml": template(snippet, version)})
    with GitRepo.open(repo) as git, pytest.raises(InvalidDefinitions) as err:
        load_model(git.tree("HEAD"))
    return [str(p) for p in err.value.problems]


VALUES = [
    # str_replace family: longest placeholder first, JSON for maps and lists.
    ("str_replace: {template: '$a $ab', params: {$a: 1, $ab: [x]}}", '1 ["x"]'),
    ("str_replace_strict: {template: 'port $p', params: {$p: 80}}", "port 80"),
    ("str_replace_vstrict: {template: 'on $h', params: {$h: web}}", "on web"),
    # str_split with and without an index (Python's negative index, as Heat).
    ("str_split: [',', 'a,b,c']", ["a", "b", "c"]),
    ("str_split: [',', 'a,b,c', 1]", "b"),
    ("str_split: [',', 'a,b,c', '-1']", "c"),
    # maps
    ("map_merge: [{a: 1, b: 2}, {b: 3}, null]", {"a": 1, "b": 3}),
    (
        "map_replace: [{k1: v1, k2: v2}, {keys: {k1: K1}, values: {v2: V2}}]",
        {"K1": "v1", "k2": "V2"},
    ),
    # lists
    ("list_concat: [[1, 2], null, [2, 3]]", [1, 2, 2, 3]),
    ("list_concat_unique: [[1, 2, 1], [3, 1, 2]]", [3, 1, 2]),
    ("filter: [[b], {get_param: words}]", ["a", "c"]),
    ("filter: [null, [1, 2]]", [1, 2]),
    ("contains: [b, {get_param: words}]", True),
    ("contains: [z, [a]]", False),
    # repeat: a list, every permutation, a map's keys, and permutations: false
    ("repeat: {template: 'port-%p%', for_each: {'%p%': [a, b]}}", ["port-a", "port-b"]),
    (
        "repeat: {template: {'%a%': '%b%'}, for_each: {'%a%': [x, y], '%b%': ['1', '2']}}",
        [{"x": "1"}, {"x": "2"}, {"y": "1"}, {"y": "2"}],
    ),
    ("repeat: {template: '<%k%>', for_each: {'%k%': {get_param: ports}}}", ["<http>", "<https>"]),
    (
        "repeat: {template: '%a%%b%', for_each: {'%a%': [x, y], '%b%': ['1', '2']}, "
        "permutations: false}",
        ["x1", "y2"],
    ),
    ("repeat: {template: 'never', for_each: {'%a%': null}}", []),
    # Heat resolves the template before it replaces: make_url escapes the placeholder.
    ("repeat: {template: {make_url: {host: '%h%'}}, for_each: {'%h%': [a]}}", ["//%25h%25"]),
    # digest of Latin-1 bytes
    ("digest: [sha256, hello]", hashlib.sha256(b"hello").hexdigest()),
    ("digest: [MD5, hello]", hashlib.md5(b"hello").hexdigest()),
    # make_url: escaped parts, an IPv6 host in brackets, the query in order
    (
        "make_url: {scheme: https, username: 'a b', password: 'p@ss', host: 'fe80::1', "
        "port: 8443, path: '/x y', query: {q: 'a/b', n: 1}, fragment: top}",
        "https://a%20b:p%40ss@[fe80::1]:8443/x%20y?q=a/b&n=1#top",
    ),
    ("make_url: {scheme: http, host: example.org, path: /}", "http://example.org/"),
    # yaql over data, with the real YAQL engine
    ("yaql: {expression: '$.data.n.sum()', data: {n: [1, 2, 3]}}", 6),
    (
        "yaql: {expression: '$.data.w.select($.toUpper())', data: {w: {get_param: words}}}",
        ["A", "B", "C"],
    ),
    (
        "yaql: {expression: '$.data.m.items().where($[1] > 1).select($[0])', "
        "data: {m: {b: 1, a: 2}}}",
        ["a"],
    ),
    # if: only the branch taken is evaluated (the other may name anything)
    ("if: [is_prod, big, {get_param: no_such_parameter}]", "big"),
    ("if: [{not: is_prod}, small, large]", "large"),
    ("if: [false, a, b]", "b"),
    # list_join: several lists (2015-10-15), maps and lists as JSON with sorted keys
    ("list_join: [', ', [a, b], [], [c]]", "a, b, c"),
    ("list_join: [' ', [{b: 1, a: [2]}, [x], null]]", '{"a": [2], "b": 1} ["x"] '),
    # get_param's path: keys and indexes (an index may be written as text); a
    # path that leads nowhere gives '', as in Heat
    ("get_param: [ports, https]", 443),
    ("get_param: [words, '1']", "b"),
    ("get_param: [words, -1]", "c"),
    ("get_param: [ports, nope]", ""),
    ("get_param: [words, 9]", ""),
    ("get_param: [words, x]", ""),
    # functions nest, in either direction
    (
        "list_join: ['-', {str_split: [',', {list_join: [',', {get_param: words}]}]}]",
        "a-b-c",
    ),
]


@pytest.mark.parametrize(("snippet", "expected"), VALUES, ids=[v[0][:40] for v in VALUES])
def test_each_function_gives_heats_value(
    make_repo: RepoFactory, snippet: str, expected: Any
) -> None:
    assert value(make_repo, snippet) == expected


ERRORS = [
    (
        "str_replace_strict: {template: 'on $a', params: {$a: x, $ab: y, $b: z}}",
        "The following params were not found in the template: $ab,$b",
    ),
    (
        "str_replace_vstrict: {template: 'on $a', params: {$a: ''}}",
        "str_replace_vstrict has an undefined or empty value for param $a, must be a "
        "defined non-empty value",
    ),
    ("str_replace: {template: 'x'}", '"str_replace" syntax should be'),
    ("str_split: 'a,b'", 'Incorrect arguments to "str_split" should be:'),
    ("str_split: [',', 'a,b', 5]", 'Incorrect index to "str_split" should be between 0 and 1'),
    ("str_split: [',', 'a,b', x]", 'Incorrect index to "str_split" should be:'),
    ("map_merge: [{a: 1}, [b]]", "Incorrect arguments: Items to merge must be maps."),
    (
        "map_replace: [{a: 1, b: 2}, {keys: {a: b}}]",
        "key replacement b collides with a key in the input map",
    ),
    ("map_replace: [{a: 1}, {nope: {}}]", 'Incorrect arguments to "map_replace" should be:'),
    ("list_concat: [[1], x]", "Incorrect arguments: Items to concat must be lists."),
    ("list_concat_unique: x", 'Incorrect arguments to "list_concat_unique" should be:'),
    ("filter: [[1], [2], [3]]", '"filter" expected 2 arguments of the form [values, sequence]'),
    ("filter: [[1], x]", '"filter" only works with lists'),
    ("contains: [a]", 'Arguments to "contains" must be of the form: [value1, [value1, value2]]'),
    ("contains: [a, {b: 1}]", 'Second argument to "contains" should be a sequence.'),
    ("repeat: {template: x}", '"repeat" syntax should be'),
    (
        "repeat: {template: x, for_each: [a]}",
        'The "for_each" argument to "repeat" must contain a map',
    ),
    (
        "repeat: {template: x, for_each: {'%a%': 'abc'}}",
        'The values of the "for_each" argument to "repeat" must be lists or maps',
    ),
    (
        "repeat: {template: x, for_each: {'%a%': [a], '%b%': [b, c]}, permutations: false}",
        "For repeat, the length of for_each values should be equal if no nested loop.",
    ),
    (
        "repeat: {template: x, for_each: {'%a%': [a]}, permutations: no_bool}",
        '"permutations" should be boolean type for repeat function.',
    ),
    ("repeat: {template: '%n%', for_each: {'%n%': [1]}}", "repeat: %n% is replaced in text"),
    ("digest: [sha256]", 'Function "digest" usage: ["<algorithm>", "<value>"]'),
    ("digest: [rot13, x]", "Algorithm must be one of"),
    ("digest: [sha256, [x]]", 'Argument to function "digest" must be a list of strings'),
    ("make_url: {host: h, colour: red}", 'Invalid arguments to "make_url": colour'),
    ("make_url: {host: h, port: 70000}", "Invalid URL port 70000, must be in range 1-65535"),
    ("make_url: {host: h, port: http}", 'Invalid URL port "http" for make_url called with'),
    ("make_url: {scheme: 'a:b', host: h}", "URL \"scheme\" should not contain ':'"),
    ("make_url: {host: h, query: [a]}", 'The "query" argument to "make_url" must be a map'),
    ("yaql: {expression: '$.data.n.sum('}", "Bad expression Parse error"),
    ("yaql: {expression: 'range(0, 1000).sum()'}", "Collection length exceeds 200 elements."),
    # A render is a pure function of the commit: no clock, no chance, no local zone.
    ("yaql: {expression: 'str(now())'}", "now() is left out of setpoint's YAQL"),
    ("yaql: {expression: 'random()'}", "random() is left out of setpoint's YAQL"),
    ("yaql: {expression: 'localtz().hours'}", "localtz() is left out of setpoint's YAQL"),
    ("yaql: {expression: 1}", 'The "expression" argument to yaql must contain a string.'),
    ("yaql: {expression: '$', extra: 1}", '"yaql" syntax should be'),
    ("if: [is_prod, a]", 'Arguments to "if" must be of the form: [condition_name, value_if_true'),
    ("if: [no_such_condition, a, b]", 'Invalid condition "no_such_condition"'),
    ("if: [{get_param: env}, a, b]", 'Invalid condition "prod"'),
    ("if: [{str_replace: {template: a, params: {}}}, a, b]", '"str_replace" cannot be used in'),
    ("Fn::Join: ['', [a]]", "Fn::Join is not supported by setpoint"),
    (
        "list_join: [',']",
        'Incorrect arguments to "list_join" should be: "list_join" : [ " ", [ "str1"',
    ),
    ("list_join: [',', [1]]", "Items to join must be string, map or list not 1"),
    ("list_join: [',', a]", '"list_join" must operate on a list'),
    ("list_join: [1, [a]]", '"list_join" delimiter must be a string'),
]


@pytest.mark.parametrize(("snippet", "message"), ERRORS, ids=[e[0][:40] for e in ERRORS])
def test_each_error_is_heats_and_names_the_template_line_and_function(
    make_repo: RepoFactory, snippet: str, message: str
) -> None:
    got = errors(make_repo, snippet)
    assert len(got) == 1, got
    fn = snippet.split(":", 1)[0]
    where = f"stacks/t.yaml:{SNIPPET_LINE}: resources.deployment.properties.input_values.x.{fn}"
    assert got[0].startswith(where), got[0]
    assert message in got[0]


# The version that introduced each function, and a call that works there.
INTRODUCED = [
    ("2015-04-30", "digest: [md5, a]"),
    ("2015-04-30", "repeat: {template: '%a%', for_each: {'%a%': [a]}}"),
    ("2015-10-15", "str_split: [',', 'a']"),
    ("2016-04-08", "map_merge: [{a: 1}]"),
    ("2016-10-14", "map_replace: [{a: 1}, {}]"),
    ("2016-10-14", "yaql: {expression: '1'}"),
    ("2017-02-24", "filter: [[], [a]]"),
    ("2017-02-24", "str_replace_strict: {template: a, params: {a: b}}"),
    ("2017-09-01", "list_concat: [[a]]"),
    ("2017-09-01", "list_concat_unique: [[a]]"),
    ("2017-09-01", "contains: [a, [a]]"),
    ("2017-09-01", "make_url: {host: a}"),
    ("2017-09-01", "str_replace_vstrict: {template: a, params: {a: b}}"),
]
BEFORE = {
    "2015-04-30": "2014-10-16",
    "2015-10-15": "2015-04-30",
    "2016-04-08": "2015-10-15",
    "2016-10-14": "2016-04-08",
    "2017-02-24": "2016-10-14",
    "2017-09-01": "2017-02-24",
}


@pytest.mark.parametrize(("introduced", "snippet"), INTRODUCED, ids=[i[1][:24] for i in INTRODUCED])
def test_a_function_is_data_before_its_version_as_in_heat(
    make_repo: RepoFactory, introduced: str, snippet: str
) -> None:
    computed, warnings = load(make_repo, snippet, introduced)
    fn = snippet.split(":", 1)[0]
    assert not isinstance(computed, dict) or fn not in computed
    assert warnings == []
    older = BEFORE[introduced]
    kept, warnings = load(make_repo, snippet, older)
    assert isinstance(kept, dict)
    assert list(kept) == [fn]  # data, as Heat keeps it
    assert [w.message for w in warnings] == [
        f"{fn} is a function from heat_template_version {introduced} on (this template: "
        f"{older}): kept as data, as Heat does"
    ]


def test_named_versions_are_their_dates(make_repo: RepoFactory) -> None:
    assert value(make_repo, "list_concat: [[a], [b]]", "pike") == ["a", "b"]
    assert value(make_repo, "if: [is_prod, yes_value]", "wallaby") == "yes_value"
    # Without a false value, a false ``if`` leaves the input out, as Heat does.
    with pytest.raises(KeyError):
        value(make_repo, "if: [{not: is_prod}, yes_value]", "2021-04-16")
    assert value(make_repo, "[a, {if: [false, b]}, c]", "wallaby") == ["a", "c"]
    got = errors(make_repo, "a", "2019-01-01")
    assert got[0].startswith("stacks/t.yaml:1: heat_template_version: unknown heat_template")
    assert "2018-08-31 (rocky)" in got[0]


def test_repeat_before_2016_10_14_takes_lists_only(make_repo: RepoFactory) -> None:
    snippet = "repeat: {template: '%k%', for_each: {'%k%': {get_param: ports}}}"
    got = errors(make_repo, snippet, "2016-04-08")
    assert 'The values of the "for_each" argument to "repeat" must be lists' in got[0]
    assert value(make_repo, snippet, "2016-10-14") == ["http", "https"]


def test_the_corpus_template_of_functions_loads_as_heat_would(make_repo: RepoFactory) -> None:
    corpus = Path(__file__).parent / "heat_corpus"
    repo = make_repo(
        {
            "stacks/functions.yaml": (corpus / "functions.yaml").read_text(),
            "stacks/functions.env.yaml": "setpoint: {servers: {web: s1}}\n",
        }
    )
    with GitRepo.open(repo) as git:
        model = load_model(git.tree("HEAD"))
    got = model.deployment("functions/web_deployment").input_values
    assert got == {
        "listen": ["0.0.0.0:80", "0.0.0.0:443"],
        "settings": {"workers": 4, "loglevel": "DEBUG", "admin": "admin"},
        "health_url": "https://api.example.org:8443/healthz?verbose=1",
        "vhosts": ["api.example.org", "www.example.org", "static.example.org"],
        "checksum": hashlib.sha256(b"s3cret").hexdigest(),
        "primary": "primary vhost: www.example.org",
    }
    outputs = model.stacks["functions"].outputs
    assert outputs["listen_count"].value == 2
    assert outputs["summary"].description == "What the web server reported."


# -- over values agents report: computed at render time --------------------------------

REPORTED = """\
heat_template_version: 2018-08-31
resources:
  server1:
    type: OS::Nova::Server
  producer_config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      outputs:
      - name: hosts
      config: |
        #!/bin/sh
        echo -n "db1,db2" > $heat_outputs_path.hosts
        echo "produced"
  producer:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: producer_config}
      server: {get_resource: server1}
  consumer_config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: keep
      inputs:
      - {name: urls, type: Json}
      - {name: second}
      - {name: settings, type: Json}
      - {name: count, type: Number}
  consumer:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: consumer_config}
      server: {get_resource: server1}
      input_values:
        urls:
          repeat:
            template: "pg://%h%:5432"
            for_each: {"%h%": {str_split: [",", {get_attr: [producer, hosts]}]}}
        second: {str_split: [",", {get_attr: [producer, hosts]}, INDEX]}
        settings:
          map_merge:
          - {said: {get_attr: [producer, deploy_stdout]}}
          - {code: {get_attr: [producer, deploy_status_code]}}
        count:
          yaql:
            expression: $.data.h.split(",").len()
            data: {h: {get_attr: [producer, hosts]}}
"""


def test_functions_over_reported_outputs_are_computed_when_rendered(tmp_path: Path) -> None:
    from tests.controller.test_heat_templates import HeatFleet

    fleet = HeatFleet(tmp_path, {"stacks/r.yaml": REPORTED.replace("INDEX", "1")})
    fleet.converge()
    kept = json.loads((fleet.kept / "server1-consumer").read_text())
    assert kept["action"] == "CREATE"
    digest = fleet.report("server1").deployments["r/consumer"].config
    inputs = {i["name"]: i["value"] for i in fleet.store.get_json_blob(digest)["inputs"]}
    assert inputs["urls"] == ["pg://db1:5432", "pg://db2:5432"]
    assert inputs["second"] == "db2"
    assert inputs["settings"] == {"said": "produced\n", "code": 0}
    assert inputs["count"] == 2
    fleet.repo.close()


def test_a_function_that_fails_over_reported_values_makes_its_deployment_wait(
    tmp_path: Path,
) -> None:
    from tests.controller.test_heat_templates import HeatFleet

    fleet = HeatFleet(tmp_path, {"stacks/r.yaml": REPORTED.replace("INDEX", "7")})
    for _ in range(3):
        outcome = fleet.reconciler.run_pass()
        fleet.agents["server1"].run_once()
    assert not outcome.failed
    assert [str(w) for w in outcome.waiting] == [
        'r/consumer on server1: str_split: Incorrect index to "str_split" should be between 0 and 1'
    ]
    fleet.repo.close()


def test_a_render_with_functions_is_the_same_in_every_process(make_repo: RepoFactory) -> None:
    """Render is a pure function of the commit: two processes with different hash
    seeds (set order) give the same digests, for yaql's sets too."""
    import os
    import subprocess
    import sys

    snippet = "yaql: {expression: '$.data.w.toSet()', data: {w: [b, a, c, a, d, e]}}"
    repo = make_repo({"stacks/t.yaml": template(snippet)})
    ids = []
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-m", "setpoint.controller.cli", "render", "--repo", str(repo),
             "--server", "s1", "--json"],
            capture_output=True, text=True, check=True, timeout=60,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        entry = json.loads(result.stdout)["servers"]["s1"][0]
        ids.append(entry["id"])
        x = {i["name"]: i["value"] for i in entry["config"]["inputs"]}["x"]
        assert x == ["a", "b", "c", "d", "e"]
    assert ids[0] == ids[1]
