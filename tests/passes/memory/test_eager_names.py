"""The eager parser: names and root calls of source lines."""

from __future__ import annotations

from torchscan.passes.memory.eager_names import assigned_name, is_augmented, rebound_names, root_call


def test_eager_names_of_source_lines() -> None:
    assert assigned_name("x = self.conv(x)") == "x"
    assert assigned_name("x == y") is None
    assert is_augmented("out += identity") and not is_augmented("out = out + identity")
    assert root_call("x = torch.cat([x, y], 1)") == ("cat", 1)
    assert root_call("x = x + self.f(x)") == ("add", 2)
    assert root_call("a, b = f(x)") == (None, 1)
    assert root_call("y = self.c(self.b(x))") == ("c", 0) and root_call("y = relu(block(x))") == (None, 0)
    assert root_call("not python(") == (None, 1)


def test_rebound_names_of_plain_and_tuple_targets() -> None:
    assert rebound_names("x = self.conv(x)") == ("x",)
    assert rebound_names("hidden_states, bias, _ = layer(") == ("hidden_states", "bias", "_")
    assert rebound_names("(a, *rest) = f(x)") == ("a", "rest")
    assert rebound_names("x == y") == () and rebound_names("self.a, b = f()") == () and rebound_names("x += 1") == ()


def test_paired_names_of_tuple_targets_bound_item_by_item() -> None:
    from torchscan.passes.memory.eager_names import paired_names

    assert paired_names("q, k = self.q(x), self.k(x)") == ("q", "k")
    assert paired_names("(a, b) = (f(x), g(x))") == ("a", "b")
    assert paired_names("a, b = f(x)") == ()  # an unpacked call: which item goes where is not read
    assert paired_names("a, *b = f(x), g(x)") == () and paired_names("a, a = f(x), g(x)") == ()
    assert paired_names("a, b = b, a") == ()  # names read on their own line (a swap, a loop's feed)
    assert paired_names("x = f(x)") == () and paired_names("self.a, b = f(x), g(x)") == ()
    assert paired_names("a, b = f(x), g(x), h(x)") == () and paired_names("a, b = (") == ()
