"""The footer: Textual's own look, its keys kept and shown or hidden in place rather than rebuilt."""

from __future__ import annotations

from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class KeyFooter(Footer):
    """Textual's Footer recomposes (a new widget for every key, each styled and data-bound) each time the screen's
    bindings are updated: on every focus change (`s` moves the focus into the SQL view and back), and on every
    step's start and end, where the runbook's gated keys go and come back. A traced `bench.py keys` run had that
    rebuild on the event loop in most slow key presses (50-150 ms of a loaded 2-core machine).

    Here the footer keeps one FooterKey per key it has ever shown, in the order the screen's bindings give, and
    a change of bindings shows or hides them and sets their enabled state in place. Its first composition already
    holds every key its screen declares (hidden until offered): the runbook's gated keys (esc, x, i, c) first
    shown at a step's start or end then show in place too. It recomposes only for a key from elsewhere it has
    never shown (then with every key it knows, the hidden ones hidden), once however often the bindings change
    before that recomposition runs (a step's start changed them four times, each a rebuild). What it shows is
    what Textual's Footer shows: the first binding of each action with ``show``, then the command palette's key."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._order: list[tuple] = []  # the keys composed, in order (a key: its binding's signature)
        self._now: dict[tuple, tuple[bool, str]] = {}  # the keys to show now -> (enabled, tooltip)
        self._bindings: dict[tuple, object] = {}  # key -> its Binding (the last seen)
        self._palette: tuple | None = None  # (binding, enabled, tooltip) of the command palette's key, or None
        self._recomposing = False  # a recomposition is on its way

    def _read(self) -> tuple[list[tuple], dict, dict, tuple | None]:
        """What the screen's bindings say to show now: (keys in order, key -> (enabled, tooltip), key -> binding,
        the palette's key)."""
        active = self.screen.active_bindings
        order: list[tuple] = []
        now: dict[tuple, tuple[bool, str]] = {}
        bindings: dict[tuple, object] = {}
        actions: set[str] = set()
        for _node, b, enabled, tooltip in active.values():
            if not b.show or b.action in actions:  # Textual's Footer: the first binding of each action
                continue
            actions.add(b.action)
            sig = (b.key, b.action, b.description, b.tooltip, b.key_display)
            order.append(sig)
            now[sig] = (enabled, tooltip)
            bindings[sig] = b
        palette = None
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            entry = active.get(self.app.COMMAND_PALETTE_BINDING)
            if entry is not None:
                palette = (entry[1], entry[2], entry[3])
        return order, now, bindings, palette

    def _declared(self) -> tuple[list[tuple], dict]:
        """The keys the screen itself declares to show (its BINDINGS), in their order, and their bindings."""
        order: list[tuple] = []
        bindings: dict[tuple, object] = {}
        actions: set[str] = set()
        for group in self.screen._bindings.key_to_bindings.values():
            for b in group:
                if b.show and b.action not in actions:
                    actions.add(b.action)
                    sig = (b.key, b.action, b.description, b.tooltip, b.key_display)
                    order.append(sig)
                    bindings[sig] = b
        return order, bindings

    @staticmethod
    def _merge(merged: list[tuple], order: list[tuple]) -> None:
        """Merge ``order``'s keys into ``merged`` in place, each new one after the key that precedes it there."""
        for i, k in enumerate(order):
            if k not in merged:
                before = next((order[j] for j in range(i - 1, -1, -1) if order[j] in merged), None)
                merged.insert(merged.index(before) + 1 if before is not None else 0, k)

    def compose(self):
        self._recomposing = False
        if not self._bindings_ready:
            return
        order, now, bindings, palette = self._read()
        # every key known, the new ones merged in after the key that precedes them now, then the screen's own
        merged = list(self._order)
        self._merge(merged, order)
        declared, declared_bindings = self._declared()
        self._merge(merged, declared)
        self._bindings.update(declared_bindings)
        self._bindings.update(bindings)
        self._order, self._now, self._palette = merged, now, palette
        self.styles.grid_size_columns = len(now)
        for sig in merged:
            b = self._bindings[sig]
            enabled, tooltip = now.get(sig, (True, ""))
            key = FooterKey(b.key, self.app.get_key_display(b), b.description, b.action, disabled=not enabled,
                            tooltip=tooltip).data_bind(compact=Footer.compact)
            key._aami_sig = sig
            key.display = sig in now
            yield key
        if palette is not None:
            b, enabled, tooltip = palette
            yield FooterKey(b.key, self.app.get_key_display(b), b.description, b.action,
                            classes="-command-palette", disabled=not enabled, tooltip=b.tooltip or b.description)

    def bindings_changed(self, screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        order, now, _bindings, palette = self._read()
        shown = [k for k in self._order if k in now]
        if shown != order or (palette is None) != (self._palette is None) or not self.children:
            if not self._recomposing:  # a key never shown, or a new order: composed again (once)
                self._recomposing = True
                self.call_after_refresh(self.recompose)
            return
        if now == self._now and palette == self._palette:
            return  # nothing to change (a focus change that moved no key)
        # Now, not after the next refresh: in the same frame as what changed the bindings (a step's end switches
        # the pane too), one layout of the screen rather than one more a frame later (~10 ms each, a key waiting)
        self._show(now, palette)

    def _show(self, now: dict, palette: tuple | None) -> None:
        """Show, hide, enable and disable the keys in place."""
        if not self.is_attached:
            return
        for key in self.query_children(FooterKey):
            sig = getattr(key, "_aami_sig", None)
            if sig is None:  # the palette's key
                if palette is not None:
                    self._set(key, palette[1], palette[0].tooltip or palette[0].description)
                continue
            key.display = sig in now
            if sig in now:
                self._set(key, *now[sig])
        self.styles.grid_size_columns = len(now)
        self._now, self._palette = now, palette

    @staticmethod
    def _set(key: FooterKey, enabled: bool, tooltip: str) -> None:
        if key._disabled == (not enabled) and (key.tooltip or "") == (tooltip or ""):
            return
        key._disabled = not enabled
        key.set_class(not enabled, "-disabled")
        key.tooltip = tooltip or None
