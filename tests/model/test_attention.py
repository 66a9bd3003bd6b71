import copy

import pytest
import torch

from acct.model import attention


def _encoder(**overrides):
    from transformers import AutoModel, DebertaV2Config

    config = dict(
        vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=512, relative_attention=True, position_buckets=8, max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"], position_biased_input=False, share_att_key=True, norm_rel_ebd="layer_norm",
        type_vocab_size=0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    config.update(overrides)
    torch.manual_seed(0)
    return AutoModel.from_config(DebertaV2Config(**config))


def _inputs(batch=5, length=23):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 300, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 9:] = 0
    mask[3, 2:] = 0
    return ids, mask


VARIANTS = {
    "v3": {},
    "separate_position_projections": {"share_att_key": False},
    "c2p_only": {"pos_att_type": ["c2p"]},
    "p2c_only": {"pos_att_type": ["p2c"]},
    "no_buckets": {"position_buckets": -1, "max_relative_positions": 16},
    "sequence_longer_than_buckets": {"position_buckets": 4, "max_relative_positions": 64},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fast_attention_matches_hugging_face_outputs_and_gradients(variant):
    reference = _encoder(**VARIANTS[variant])
    fast = copy.deepcopy(reference)
    assert attention.install(fast)
    ids, mask = _inputs()
    real = mask.bool()

    out_ref = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    out_fast = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(out_fast[real], out_ref[real], atol=2e-5, rtol=1e-4)

    # Gradients through the masked real tokens, for every parameter (position projections included).
    weights = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(2))
    (out_ref * weights)[real].sum().backward()
    (out_fast * weights)[real].sum().backward()
    for (name, p_ref), (_, p_fast) in zip(reference.named_parameters(), fast.named_parameters()):
        if p_ref.grad is None:
            assert p_fast.grad is None, name
            continue
        torch.testing.assert_close(p_fast.grad, p_ref.grad, atol=2e-5, rtol=1e-4, msg=name)


def test_install_keeps_parameter_names_and_can_be_repeated():
    encoder = _encoder()
    names = [n for n, _ in encoder.named_parameters()]
    assert attention.install(encoder)
    assert attention.install(encoder)  # a second install wraps the original, not the fast forward
    assert [n for n, _ in encoder.named_parameters()] == names
    module = next(m for m in encoder.modules() if type(m).__name__ == "DisentangledSelfAttention")
    assert module._acct_original_forward.__func__ is type(module).forward


def test_attention_weights_requested_fall_back_to_the_original():
    encoder = _encoder()
    attention.install(encoder)
    ids, mask = _inputs()
    out = encoder(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert out.attentions is not None and len(out.attentions) == 2


def test_other_encoders_are_left_alone():
    from transformers import AutoModel, BertConfig

    bert = AutoModel.from_config(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                            intermediate_size=32))
    assert not attention.is_deberta(bert)
    assert not attention.install(bert)


def test_an_attention_that_disagrees_keeps_its_own_forward():
    encoder = _encoder()
    module = next(m for m in encoder.modules() if type(m).__name__ == "DisentangledSelfAttention")
    original = module.forward
    # An attention whose code differs from what acct expects (here: values doubled).
    module.forward = lambda *args: (2 * original(*args)[0], None)
    patched = module.forward
    assert attention.is_deberta(encoder)
    assert not attention.install(encoder)
    assert module.forward is patched


def test_under_bf16_autocast_the_fast_forward_errs_like_the_library():
    # The CUDA path runs in bf16 autocast; the CPU's autocast exercises the same dtype handling
    # (masked fill with the bf16 minimum, softmax promoted to fp32).
    reference = _encoder(hidden_size=64, num_attention_heads=4, position_buckets=16)
    fast = copy.deepcopy(reference)
    assert attention.install(fast)
    ids, mask = _inputs(batch=4, length=40)
    real = mask.bool()
    with torch.no_grad():
        exact = reference(input_ids=ids, attention_mask=mask).last_hidden_state[real]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            library = reference(input_ids=ids, attention_mask=mask).last_hidden_state.float()[real]
            ours = fast(input_ids=ids, attention_mask=mask).last_hidden_state.float()[real]
    library_error = (library - exact).abs().max().item()
    our_error = (ours - exact).abs().max().item()
    assert library_error > 0  # autocast really ran in bf16
    assert our_error <= 2 * library_error + 1e-3, (our_error, library_error)


# -- backends -------------------------------------------------------------------------------------


def test_auto_backend_on_cpu_is_acct_and_hf_leaves_the_library_forward():
    encoder = _encoder(hidden_size=32, num_attention_heads=2, position_buckets=16)
    used, notices = attention.use_backend(encoder, "auto", torch.device("cpu"))
    assert used == "acct" and notices == []
    plain = _encoder(hidden_size=32, num_attention_heads=2, position_buckets=16)
    used, _ = attention.use_backend(plain, "hf", torch.device("cpu"))
    assert used == "hf"
    assert all(not hasattr(m, "_acct_original_forward") for m in attention._attention_modules(plain))


def test_disentangled_flash_on_a_cpu_falls_back_to_acct_and_says_why():
    encoder = _encoder(hidden_size=32, num_attention_heads=2, position_buckets=16)
    used, notices = attention.use_backend(encoder, "disentangled_flash", torch.device("cpu"))
    assert used == "acct"
    assert len(notices) == 1 and "disentangled_flash not used" in notices[0] and "CUDA" in notices[0]


def test_a_non_deberta_encoder_keeps_its_attention():
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32))
    used, notices = attention.use_backend(bert, "acct", torch.device("cpu"))
    assert used == "hf" and "DeBERTa-v2/v3 encoders only" in notices[0]


def test_disentangled_flash_encoder_matches_the_library_and_keeps_parameter_names():
    pytest.importorskip("disentangled_flash")  # the dev and gpu extras
    # The package's pure-torch path runs on a CPU: the same swap and the same check as on CUDA.
    reference = _encoder(hidden_size=64, num_attention_heads=2, position_buckets=16).eval()
    swapped = copy.deepcopy(reference)
    keys = set(swapped.state_dict())
    assert attention._install_flash(swapped, torch.device("cpu"), backend="torch")
    assert type(swapped.encoder).__name__ == "DebertaV2OptimizedEncoder"
    assert set(swapped.state_dict()) == keys
    ids, mask = _inputs(batch=4, length=30)
    real = mask.bool()
    with torch.no_grad():
        torch.testing.assert_close(swapped(input_ids=ids, attention_mask=mask).last_hidden_state[real],
                                   reference(input_ids=ids, attention_mask=mask).last_hidden_state[real],
                                   atol=1e-5, rtol=1e-4)


def test_settings_saved_with_fast_attention_still_load():
    from acct.config.train import ModelSettings

    assert ModelSettings.model_validate({"fast_attention": False}).attention == "hf"
    assert ModelSettings.model_validate({"fast_attention": True}).attention == "auto"
