"""The eager parser: names and root calls of source lines."""

from __future__ import annotations

from pathlib import Path

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


def test_annotated_assignments_bind_their_name() -> None:
    from torchscan.passes.memory.eager_names import assigned_name, root_call

    code = "inputs_embeds: torch.Tensor = self.embed_tokens(input_ids)"  # Hugging Face's Llama
    assert assigned_name(code) == "inputs_embeds" and rebound_names(code) == ("inputs_embeds",)
    assert root_call(code) == ("embed_tokens", 0)
    assert root_call("x: Optional[Tensor] = torch.cat([x, y], 1)") == ("cat", 1)
    assert assigned_name("x: int") is None and rebound_names("x: int") == () and root_call("x: int") == (None, 1)
    assert assigned_name("x: int == 3") is None


def test_paired_names_of_tuple_targets_bound_item_by_item() -> None:
    from torchscan.passes.memory.eager_names import paired_names

    assert paired_names("q, k = self.q(x), self.k(x)") == ("q", "k")
    assert paired_names("(a, b) = (f(x), g(x))") == ("a", "b")
    assert paired_names("a, b = f(x)") == ()  # an unpacked call: which item goes where is not read
    assert paired_names("a, *b = f(x), g(x)") == () and paired_names("a, a = f(x), g(x)") == ()
    assert paired_names("a, b = b, a") == ()  # names read on their own line (a swap, a loop's feed)
    assert paired_names("x = f(x)") == () and paired_names("self.a, b = f(x), g(x)") == ()
    assert paired_names("a, b = f(x), g(x), h(x)") == () and paired_names("a, b = (") == ()


def test_unpacked_names_of_tuple_targets_bound_to_one_value_s_items() -> None:
    from torchscan.passes.memory.eager_names import unpacked_names

    assert unpacked_names("k, v = self.kv(x).view(B, 4, -1).split([8, 8], dim=2)") == ("k", "v")
    assert unpacked_names("q, k, v = qkv.unbind(0)") == ("q", "k", "v") and unpacked_names("a, b = t") == ("a", "b")
    assert unpacked_names("q, k = self.q(x), self.k(x)") == ()  # a tuple of expressions: paired_names
    assert unpacked_names("a, *b = f(x)") == () and unpacked_names("a, a = f(x)") == ()
    assert unpacked_names("x, y = f(x)") == ()  # a name read on its own line
    assert unpacked_names("x = f(x)") == () and unpacked_names("self.a, b = f(x)") == ()
    assert unpacked_names("a, b = [f(x), g(x)]") == () and unpacked_names("a, b = (") == ()


def test_statement_text_of_a_statement_spelled_over_several_lines() -> None:
    from torchscan.passes.memory.eager_names import statement_text, unpacked_names

    file = str(Path(__file__).with_name("_multiline_source.py"))
    whole = statement_text(file, 3)
    assert whole is not None and unpacked_names(whole) == ("k", "v")
    assert statement_text(file, 5) is None  # a statement of one line
    assert statement_text(file, 99) is None and statement_text("/no/such/file.py", 1) is None


def test_one_statement_of_one_line_compound_statements() -> None:
    from torchscan.passes.memory.eager_names import one_statement

    assert one_statement("if c: x = f(x)") == "x = f(x)" and one_statement("else: y = g(y)") == "y = g(y)"
    assert one_statement("for b in self.blocks: x = b(x)") == "x = b(x)"
    assert one_statement("elif a[:, 0].sum() > 0: y = {1: 2}[k]") == "y = {1: 2}[k]"
    assert one_statement("with torch.no_grad(): t = self.teacher(x)") == "t = self.teacher(x)"
    assert one_statement("def block(self, t): return self.f(t)") == "return self.f(t)"
    assert one_statement("if c: a = f(x); b = g(a)") == "if c: a = f(x); b = g(a)"  # several: left as it is
    assert one_statement("if c:") == "if c:" and one_statement("iffy = f(x)") == "iffy = f(x)"
    assert one_statement("x = f(x)") == "x = f(x)"


def test_appended_name_of_lines_adding_to_a_list() -> None:
    from torchscan.passes.memory.eager_names import appended_name

    assert appended_name("outs.append(conv(x))") == "outs" and appended_name("feats.extend([a(x), b(x)])") == "feats"
    assert appended_name("self.outs.append(x)") is None and appended_name("y = outs.append(x)") is None


def test_listed_name_of_a_call_on_a_bare_name() -> None:
    from torchscan.passes.memory.eager_names import listed_name

    assert listed_name("x = torch.cat(output, dim=1)") == ("cat", "output")
    assert listed_name("return torch.stack(feats, 0)") == ("stack", "feats")
    assert listed_name("x = torch.cat([a, b], 1)") is None and listed_name("x = torch.cat(outs + [y], 1)") is None
    assert listed_name("y = f(x)") is None and listed_name("x = x.flatten(2)") is None


def _helper(x: object, concat_list: list[object], *, scale: float = 1.0) -> object:
    return (x, concat_list, scale)  # line read by test_parameter_names_read_from_the_def


class _Owner:
    def forward(
        self,
        x: object,
        outs: list[object],
    ) -> object:
        return (x, outs)  # line read by test_parameter_names_read_from_the_def


def test_parameter_names_read_from_the_def() -> None:
    import inspect

    from torchscan.passes.memory.eager_names import parameter_names

    file = __file__
    helper_line = inspect.getsourcelines(_helper)[1] + 1
    method_line = inspect.getsourcelines(_Owner.forward)[1] + 5
    assert parameter_names(file, helper_line, "_helper") == ("x", "concat_list", "*", "scale")
    assert parameter_names(file, method_line, "forward") == ("self", "x", "outs")  # a header over several lines
    assert parameter_names(file, helper_line, "forward") is None  # no such function around the line
    assert parameter_names("<no such file>", 3, "forward") is None and parameter_names(file, 10**6, "f") is None


def test_passed_name_maps_a_parameter_to_the_call_s_argument() -> None:
    from torchscan.passes.memory.eager_names import passed_name

    method, function = ("self", "x", "concat_list"), ("x", "concat_list", "*", "scale")
    assert passed_name("x = self.conv_mid(x, output)", "conv_mid", method, "concat_list") == "output"
    assert passed_name("y = helper(x, feats)", "helper", function, "concat_list") == "feats"
    assert passed_name("y = helper(x, concat_list=feats)", "helper", function, "concat_list") == "feats"
    assert passed_name("y = helper(x, feats, scale=s)", "helper", function, "scale") == "s"  # keyword-only: by keyword
    assert passed_name("y = helper(x, feats)", "helper", function, "scale") is None  # not given: none passed
    assert passed_name("x = self.mid(x, [x])", "mid", method, "concat_list") is None  # a list made on the line
    assert passed_name("x = self.mid(*args)", "mid", method, "concat_list") is None
    assert passed_name("x = y", "mid", method, "x") is None
    assert passed_name("x = checkpoint(self.mid, x, outs)", "mid", method, "concat_list") is None  # another callee
