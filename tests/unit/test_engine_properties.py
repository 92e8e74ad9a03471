"""Hypothesis state machine over random campaigns: the engine's invariants hold on every trace.

- no two sends of the campaign to one subscriber closer than `spacing`, across re-entries
- never more than `followup_cap` no-convert follow-ups in a row
- nothing sent inside quiet hours (subscriber's timezone)
- a holdout journey is never sent
- every send, route, convert and no-convert follows an edge of the graph
- every journey ends
- with `at` on nodes and edges, `send_time: best` (its arms, a random prior) and sends
  that break before they leave (a `skip`, not counted as a send): the same rules hold,
  a send of a `best` node carries its arm and no other send does
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from orchestrator import engine
from orchestrator.engine import Action, EventView, JourneyState, SubscriberView
from orchestrator.engine.invariants import journey_problems
from orchestrator.engine.sendtime import SendTimeData
from orchestrator.engine.timing import quiet_until
from orchestrator.language.spec import END, Campaign, NotificationNode

T0 = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)  # a week before Europe's spring DST change
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")


CLOCKS = ("07:30", "10:00", "12:30", "18:45", "23:30")
QUIETS = (None, ("21:00", "08:00"), ("00:00", "06:30"), ("12:00", "13:00"))


def _in_quiet(clock: str, quiet: tuple[str, str] | None) -> bool:
    if quiet is None:
        return False
    start, end = quiet
    return (start <= clock < end) if start < end else (clock >= start or clock < end)


@st.composite
def campaigns(draw: st.DrawFn) -> Campaign:
    n = draw(st.integers(2, 7))
    quiet = draw(st.sampled_from(QUIETS))
    kinds = [
        draw(
            st.sampled_from(
                ["notification", "notification", "notification", "split", "branch", "wait"]
            )
        )
        for _ in range(n)
    ]

    def later(i: int) -> list[str]:
        return [f"n{j}" for j in range(i + 1, n)] + [END]

    def target(i: int) -> str:
        return draw(st.sampled_from(later(i)))

    nodes: dict[str, Any] = {}
    for i, kind in enumerate(kinds):
        options = later(i)
        if kind == "split" and len(options) >= 2:
            a, b = draw(st.lists(st.sampled_from(options), min_size=2, max_size=2, unique=True))
            w = draw(st.integers(1, 99))
            nodes[f"n{i}"] = {"split": {a: w, b: 100 - w}}
        elif kind == "branch":
            nodes[f"n{i}"] = {"branch": [{"segment": "vip", "to": target(i)}, {"else": target(i)}]}
        elif kind == "wait" or kind == "split":
            nodes[f"n{i}"] = {"wait": f"{draw(st.integers(1, 48))}h", "next": target(i)}
        else:
            node: dict[str, Any] = {
                "notification": {"title": f"N{i}"},
                "on_convert": target(i),
                "on_no_convert": {"to": target(i), "delay": f"{draw(st.integers(0, 30))}h"},
            }
            if draw(st.booleans()):
                node["window"] = f"{draw(st.integers(1, 72))}h"
            if draw(st.booleans()):
                node["goal"] = "purchase"
            clock = draw(st.sampled_from((None, None, *CLOCKS)))
            if clock is not None and not _in_quiet(clock, quiet):  # else a validation error
                node["at"] = clock
            elif draw(st.booleans()):
                node["send_time"] = draw(st.sampled_from(["best", "immediate"]))
            if draw(st.booleans()):
                node["on_no_convert"]["at"] = draw(st.sampled_from(CLOCKS))
            nodes[f"n{i}"] = node
    notifications = [
        i for i, k in enumerate(kinds) if f"n{i}" in nodes and "notification" in nodes[f"n{i}"]
    ]
    loops = len(notifications) >= 2 and draw(st.booleans())
    if (
        loops
    ):  # a no-convert edge back up: bounded by the follow-up cap (and max_sends for convert paths)
        i = max(notifications)
        j = draw(st.sampled_from([k for k in notifications if k < i]))
        nodes[f"n{i}"]["on_no_convert"] = {"to": f"n{j}", "delay": "1h"}
    body: dict[str, Any] = {
        "campaign": "prop",
        "title": "Prop",
        "goal": draw(st.sampled_from(["click", "signup"])),
        "settings": {
            "spacing": f"{draw(st.integers(0, 30))}h",
            "followup_cap": draw(st.integers(0, 3)),
            "window": f"{draw(st.integers(1, 72))}h",
            "holdout": f"{draw(st.sampled_from([0, 0, 20, 50]))}%",
            "exit_on": ["unsubscribe", "refund"],
            "reentry": draw(st.sampled_from(["never", "1h", "20h"])),
            "send_time": draw(
                st.sampled_from(
                    [
                        "immediate",
                        "best",
                        {"mode": "best", "max_delay": "6h", "explore": "30%", "compare": "30%"},
                    ]
                )
            ),
        },
        "segments": {"vip": {"match": {"tag": "vip"}}},
        "subcampaigns": {"s": {"segment": "vip", "start": "n0", "nodes": nodes}},
    }
    if quiet:
        body["settings"]["quiet_hours"] = {"start": quiet[0], "end": quiet[1]}
    if loops or draw(st.booleans()):
        body["settings"]["max_sends"] = draw(st.integers(1, 8))
    if draw(st.booleans()):
        body["settings"]["frequency_cap"] = {
            "max": draw(st.integers(1, 4)),
            "per": f"{draw(st.integers(1, 7))}d",
        }
    return Campaign.model_validate(body)


class Journeys(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.campaign: Campaign
        self.people: list[SubscriberView] = []
        self.vips: list[bool] = []  # in the branch segment "vip"
        self.states: list[JourneyState] = []
        self.actions: list[list[Action]] = []  # of each person's current journey
        self.earlier: list[list[list[Action]]] = []  # each person's journeys that ended
        self.events: list[list[EventView]] = []
        self.breaking: set[int] = set()  # whose next send fails to build (a skip)
        self.prior: list[float] = [0.0] * 24

    @initialize(
        campaign=campaigns(),
        people=st.lists(
            st.tuples(st.sampled_from(TIMEZONES), st.booleans()), min_size=1, max_size=4
        ),
        prior=st.lists(st.floats(0, 0.5), min_size=24, max_size=24),
    )
    def setup(self, campaign: Campaign, people: list[tuple[str, bool]], prior: list[float]) -> None:
        self.campaign = campaign
        self.prior = prior
        for i, (tz, vip) in enumerate(people):
            view = SubscriberView(id=f"p{i}", timezone=tz)
            self.vips.append(vip)
            result = engine.enroll(
                campaign=campaign, subcampaign="s", subscriber_id=view.id, at=self.now
            )
            self.people.append(view)
            self.states.append(result.state)
            self.actions.append(list(result.actions))
            self.earlier.append([])
            self.events.append([])

    def _advance_all(self) -> None:
        for i, state in enumerate(self.states):
            person = self.people[i]
            result = engine.advance(
                state,
                campaign=self.campaign,
                subscriber=person,
                events=[e for e in self.events[i] if e.at <= self.now],
                memberships=frozenset({"vip"}) if self.vips[i] else frozenset(),
                recent_sends=[
                    a.at
                    for actions in [*self.earlier[i], self.actions[i]]
                    for a in actions
                    if a.type == "send"
                ],
                now=self.now,
                send_times=SendTimeData({}, self.prior),
            )
            new, actions = result.state, list(result.actions)
            if result.before_send is not None and i in self.breaking:
                self.breaking.discard(i)
                skipped = engine.skip_send(
                    result.before_send,
                    campaign=self.campaign,
                    subscriber=person,
                    reason="template_error",
                    now=self.now,
                )
                actions = [a for a in actions if a.type != "send" and a.at <= self.now]
                actions = actions[: len(actions)] + list(skipped.actions)
                new = skipped.state
            for action in actions:
                if action.type == "send":
                    assert action.step is not None
                    new = replace(new, last_send_id=1000 * i + action.step)
            self.states[i] = new
            self.actions[i].extend(actions)

    @rule(hours=st.integers(0, 60), minutes=st.integers(0, 59))
    def time_passes(self, hours: int, minutes: int) -> None:
        self.now += timedelta(hours=hours, minutes=minutes)
        self._advance_all()

    @precondition(lambda self: bool(self.people))
    @rule(who=st.integers(0, 3), name=st.sampled_from(["signup", "purchase", "refund", "other"]))
    def event_happens(self, who: int, name: str) -> None:
        i = who % len(self.people)
        self.events[i].append(EventView(name, self.now))
        self._advance_all()

    @precondition(lambda self: bool(self.people))
    @rule(who=st.integers(0, 3))
    def notification_clicked(self, who: int) -> None:
        i = who % len(self.people)
        send_id = self.states[i].last_send_id
        if send_id is not None:
            self.events[i].append(EventView("click", self.now, send_id=send_id))
            self._advance_all()

    @precondition(lambda self: bool(self.people))
    @rule(who=st.integers(0, 3))
    def next_send_breaks(self, who: int) -> None:
        """The person's next send cannot be built (a template error, say): it is skipped."""
        self.breaking.add(who % len(self.people))

    @precondition(lambda self: bool(self.people))
    @rule(who=st.integers(0, 3))
    def unsubscribes(self, who: int) -> None:
        i = who % len(self.people)
        self.people[i] = replace(self.people[i], status="unsubscribed")
        self._advance_all()

    @precondition(lambda self: bool(self.people))
    @rule(who=st.integers(0, 3), minutes=st.integers(0, 600))
    def exits_and_enters_again(self, who: int, minutes: int) -> None:
        """The issue's case: an exit_on event ends the journey, and once re-entry allows
        (`minutes` later than that), a trigger-like entry starts a new one, as enrolment
        makes it: `may_enter` at its time, the campaign's last send carried over."""
        i = who % len(self.people)
        if self.people[i].status != "active":
            return
        self.events[i].append(EventView("refund", self.now))
        self._advance_all()
        state = self.states[i]
        reentry = self.campaign.settings.reentry
        if not state.ended or reentry is None:
            return
        assert state.ended_at is not None  # later than now after an edge to end with a delay
        self.now = max(self.now, state.ended_at + reentry) + timedelta(minutes=minutes)
        self._advance_all()
        last = _last_send([*self.earlier[i], self.actions[i]])
        past = engine.Past(in_flight=False, ended_at=state.ended_at, last_send_at=last)
        assert engine.may_enter(self.campaign, past, self.now)
        result = engine.enroll(
            campaign=self.campaign,
            subcampaign="s",
            subscriber_id=self.people[i].id,
            at=self.now,
            last_send_at=last,
        )
        self.earlier[i].append(self.actions[i])
        self.states[i] = result.state
        self.actions[i] = list(result.actions)
        self._advance_all()

    @invariant()
    def traces_keep_the_rules(self) -> None:
        for i, actions in enumerate(self.actions):
            _check_trace(self.campaign, self.people[i], [*self.earlier[i], actions])

    def teardown(self) -> None:
        if not self.people:
            return
        for _ in range(400):
            if all(s.ended for s in self.states):
                break
            self.now += timedelta(hours=12)
            self._advance_all()
        assert all(s.ended for s in self.states), "every journey ends"
        for i, actions in enumerate(self.actions):
            _check_trace(self.campaign, self.people[i], [*self.earlier[i], actions])


def _last_send(journeys: list[list[Action]]) -> datetime | None:
    return max((a.at for actions in journeys for a in actions if a.type == "send"), default=None)


def _check_trace(campaign: Campaign, person: SubscriberView, journeys: list[list[Action]]) -> None:
    """Each journey of the person on its own, spacing also from the journeys before it."""
    for n, actions in enumerate(journeys):
        previous = _last_send(journeys[:n])
        problems = journey_problems(campaign, person.timezone, actions, previous_send=previous)
        assert not problems, problems
        for a in actions:
            if a.type != "send":
                continue
            node = campaign.node(a.node)
            assert isinstance(node, NotificationNode)
            spec = node.send_time or campaign.settings.send_time
            best = spec.mode == "best" and node.at is None
            assert (a.timing is not None) == best, (a, spec)
            assert quiet_until(campaign.settings.quiet_hours, person.timezone, a.at) is None


TestJourneys = pytest.mark.slow(Journeys.TestCase)
TestJourneys.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
