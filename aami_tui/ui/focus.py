"""Widgets that gain and lose the focus without being drawn whole again."""

from __future__ import annotations

from textual import events

_FOCUS = frozenset({"focus", "blur"})


def _focus_selectors(stylesheet) -> tuple:
    """The stylesheet's selectors carrying :focus or :blur (any part of a rule's selector), kept until it is
    parsed again (Textual then makes a new list of rules)."""
    rules = stylesheet.rules
    cached = getattr(stylesheet, "_aami_focus_selectors", None)
    if cached is not None and cached[0] is rules and cached[1] == len(rules):
        return cached[2]
    found = tuple(sel for rule in rules for selector_set in rule.selector_set for sel in selector_set.selectors
                  if sel.pseudo_classes & _FOCUS)
    stylesheet._aami_focus_selectors = (rules, len(rules), found)
    return found


def focus_styles(node) -> bool:
    """Whether a rule's :focus or :blur could apply to ``node``: a selector part carrying one matches its type, id
    or class (the rest of the rule ignored, so that this errs on the side of yes; `&:focus` matches anything). If
    none can, the node's focus changes no style."""
    return any(sel._check(node) for sel in _focus_selectors(node.app.stylesheet))


class FocusKeepsLines:
    """Textual's Widget draws a widget whole again when it gains or loses the focus, in case what it renders
    depends on it. A style the focus changes (``:focus``, ``:focus-within``) redraws it anyway, through the styles.
    For the widgets that use this, nothing else does: a scrolling pane's background, the SQL view's text (whose
    cursor line TextArea redraws itself). Each `s` moves the focus into the SQL view and back out to the step pane,
    and each of them was drawn whole again: 1-3 ms of the main thread each time (issue 8's key row)."""

    def _on_focus(self, event: events.Focus) -> None:
        event.prevent_default()  # not Widget._on_focus: this is what it does, without the refresh
        self.has_focus = True
        if self.parent is not None:
            self.parent.post_message(events.DescendantFocus(self))

    def _on_blur(self, event: events.Blur) -> None:
        event.prevent_default()  # not Widget._on_blur: this is what it does, without the refresh
        self.has_focus = False
        if self.parent is not None:
            self.parent.post_message(events.DescendantBlur(self))

    def watch_has_focus(self, has_focus: bool) -> None:
        """Textual styles the widget and everything in it again (~5 ms for a step pane's contents), in case a rule
        like `Pane:focus Child` exists. When no rule's :focus or :blur can apply to this widget, its focus
        changes no style: only the widget itself is styled again."""
        if focus_styles(self):
            super().watch_has_focus(has_focus)
        else:
            self.app.stylesheet.update_nodes([self], animate=True)
