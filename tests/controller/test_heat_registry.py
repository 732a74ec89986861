"""resource_registry as operators' (TripleO-style) environments write it:
wildcard mappings, mappings to other types (OS::Heat::None among them), the
per-resource ``resources:`` section (its ``hooks`` warned about), ``null`` to
remove a mapping, and the environment file then the setpoint environment
merged in that order. Which mapping wins is Heat's order
(``heat.engine.environment.ResourceRegistry.get_resource_info``): a
per-resource entry first, then the matching keys sorted as strings, so a
wildcard (``*`` sorts before letters) comes before an exact mapping it
covers."""

from __future__ import annotations

from pathlib import Path

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import Model
from tests.controller.test_heat_nested import APP, GREET
from tests.controller.test_heat_templates import MakeFleet, dedent, make_fleet

__all__ = ["make_fleet"]  # the fixture, used by name

# APP with a third template resource, of a type only a wildcard maps.
SITE = APP.replace(
    "  report_config:\n",
    "  wild:\n    type: Site::Greeter\n    properties:\n"
    "      server: {get_resource: server1}\n      greeting: hey\n  report_config:\n",
)
SITE = SITE.replace("{get_attr: [registered, outputs, said]}", "fixed")
LOUD = GREET.replace('"$greeting from', '"$greeting!! from')


def load(
    make_fleet: MakeFleet, registry: str, tmp_path: Path, env: str | None = None
) -> tuple[Model, list[str]]:
    files = {
        "stacks/app.yaml": dedent(SITE),
        "stacks/app.env.yaml": dedent(registry)
        + f"parameter_defaults:\n  log: {tmp_path / 'log'}\n",
        "stacks/nested/greet.yaml": dedent(GREET),
        "stacks/nested/loud.yaml": dedent(LOUD),
    }
    if env is not None:
        files["environments/prod.yaml"] = dedent(env)
    fleet = make_fleet(files)
    warnings: list[str] = []
    model = load_model(
        fleet.repo.tree("HEAD"),
        env="prod" if env is not None else None,
        on_problem=lambda p: warnings.append(str(p)),
    )
    return model, warnings


def templates(model: Model) -> dict[str, str]:
    return {d.qualified: d.file for d in model.deployments() if d.qualified != "app/report"}


def test_a_wildcard_maps_every_type_with_its_prefix(make_fleet: MakeFleet, tmp_path: Path) -> None:
    model, warnings = load(
        make_fleet,
        """
        resource_registry:
          "Site::*": "My::*"
          My::Greeter: nested/greet.yaml
        """,
        tmp_path,
    )
    assert warnings == []
    assert templates(model) == {
        "app/greeter/deployment": "stacks/nested/greet.yaml",
        "app/registered/deployment": "stacks/nested/greet.yaml",
        "app/wild/deployment": "stacks/nested/greet.yaml",
    }


def test_heat_tries_a_wildcard_before_an_exact_mapping_it_covers(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    """Heat sorts the matching keys as strings: 'My::*' < 'My::Greeter'. The
    exact mapping never applies, which is rarely meant: warned."""
    model, warnings = load(
        make_fleet,
        """
        resource_registry:
          My::Greeter: nested/greet.yaml
          "My::*": OS::Heat::None
          "Site::*": nested/loud.yaml
        """,
        tmp_path,
    )
    assert templates(model) == {"app/greeter/deployment": "stacks/nested/greet.yaml"}
    assert warnings == [
        "stacks/app.env.yaml:4: resource_registry.Site::*: a wildcard mapped to a template "
        "file matches no type in Heat (map it to a type, and that type to the file)",
        "stacks/app.env.yaml:2: resource_registry.My::Greeter: never used: Heat tries "
        "the wildcard 'My::*' (line 3) first for My::Greeter, as it sorts the matching "
        "keys as strings",
        "stacks/app.yaml:19: resources.wild.type: Site::Greeter is not managed by setpoint",
    ]


def test_a_per_resource_mapping_wins_and_its_hooks_are_warned_about(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    model, warnings = load(
        make_fleet,
        """
        resource_registry:
          "Site::*": "My::*"
          My::Greeter: nested/greet.yaml
          resources:
            wild:
              My::Greeter: nested/loud.yaml
              hooks: [pre-create, pre-update]
            "*_server":
              restricted_actions: replace
        """,
        tmp_path,
    )
    assert templates(model) == {
        "app/greeter/deployment": "stacks/nested/greet.yaml",
        "app/registered/deployment": "stacks/nested/greet.yaml",
        "app/wild/deployment": "stacks/nested/loud.yaml",
    }
    assert warnings == [
        "stacks/app.env.yaml:7: resource_registry.resources.wild.hooks: hooks are not used "
        "by setpoint (it never pauses on a resource)",
        "stacks/app.env.yaml:9: resource_registry.resources.*_server.restricted_actions: "
        "restricted_actions are not used by setpoint (it updates and replaces as the "
        "commit says)",
    ]


def test_a_per_resource_mapping_reaches_into_a_nested_template(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    """As Heat builds a nested stack's environment: the entries under the
    template resource's name are the nested template's per-resource entries."""
    model, _warnings = load(
        make_fleet,
        """
        resource_registry:
          "Site::*": "My::*"
          My::Greeter: nested/greet.yaml
          resources:
            registered:
              deployment:
                OS::Heat::SoftwareDeployment: OS::Heat::None
        """,
        tmp_path,
    )
    assert sorted(templates(model)) == ["app/greeter/deployment", "app/wild/deployment"]


def test_the_setpoint_environment_is_merged_after_the_environment_file(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    """Later wins, key by key, and null removes a mapping (a wildcard null
    every mapping it covers), as Heat merges several -e files."""
    model, warnings = load(
        make_fleet,
        """
        resource_registry:
          "Site::*": "My::*"
          My::Greeter: nested/greet.yaml
          My::Loud: nested/loud.yaml
        """,
        tmp_path,
        env="""
        kind: Environment
        resource_registry:
          "Site::*": null
          My::Greeter: ../stacks/nested/loud.yaml
        """,
    )
    assert templates(model) == {
        "app/greeter/deployment": "stacks/nested/greet.yaml",
        "app/registered/deployment": "stacks/nested/loud.yaml",
    }
    assert warnings == [
        "stacks/app.yaml:19: resources.wild.type: Site::Greeter is not managed by setpoint"
    ]


CORPUS = Path(__file__).parent / "heat_corpus"


def test_the_corpus_tiers_render_and_converge(make_fleet: MakeFleet, tmp_path: Path) -> None:
    """Wildcard, type-to-type, OS::Heat::None and per-resource mappings, a
    group of template resources read through refs, attributes, resource.<n>
    and removed_rsrc_list: rendered, then converged by agent processes."""
    log = tmp_path / "summary.log"
    files = {
        "stacks/tiers.yaml": (CORPUS / "tiers.yaml").read_text(),
        "stacks/tiers.env.yaml": (CORPUS / "tiers.env.yaml").read_text()
        + f"parameter_defaults:\n  log: {log}\n",
    }
    for name in ("tier_member.yaml", "tier_member_loud.yaml"):
        files[f"stacks/nested/{name}"] = (CORPUS / "nested" / name).read_text()
    fleet = make_fleet(files)
    warnings: list[str] = []
    model = load_model(fleet.repo.tree("HEAD"), on_problem=lambda p: warnings.append(str(p)))
    assert warnings == [
        "stacks/tiers.env.yaml:9: resource_registry.resources.members.2.hooks: hooks are "
        "not used by setpoint (it never pauses on a resource)"
    ]
    assert {d.qualified: d.file for d in model.deployments()} == {
        "tiers/members/0/deployment": "stacks/nested/tier_member.yaml",
        "tiers/members/1/deployment": "stacks/nested/tier_member.yaml",
        "tiers/members/2/deployment": "stacks/nested/tier_member_loud.yaml",
        "tiers/summary": "stacks/tiers.yaml",
    }
    summary = model.deployment("tiers/summary")
    assert summary.input_values["stacks"] == "tiers/members/0,tiers/members/1,tiers/members/2"
    assert model.stacks["tiers"].outputs["member_stacks"].value == {
        "0": "tiers/members/0",
        "1": "tiers/members/1",
        "2": "tiers/members/2",
    }
    fleet.converge()
    assert log.read_text().splitlines() == [
        "tiers/members/0,tiers/members/1,tiers/members/2 | member-0 | "
        '{"0":"member-0","1":"member-1","2":"member-2 (loud)"} | []'
    ]
