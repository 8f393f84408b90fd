"""Seq2seq model: variants change what they should; greedy decoding equals a step-by-step
decode; beam search of width 1 is greedy and a wide beam finds the exhaustive optimum."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.nn import attention, seq2seq

V_SRC, V_TGT, END, START, PAD = 11, 9, 2, 1, 0

VARIANTS = {
    "baseline": {},
    "reversed": dict(reverse_input=True),
    "shared": dict(shared_embedding=True),
    "peeky": dict(reverse_input=True, peeky=True),
    "dot": dict(attention="dot"),
    "general": dict(attention="general"),
    "additive": dict(reverse_input=True, attention="additive", attention_dim=5),
    "bidirectional": dict(bidirectional=True, attention="dot", peeky=True),
    "one_hot": dict(embed_dim=0),
    "gru": dict(cell="gru", peeky=True),
}


def _model(**kw):
  shared = kw.get("shared_embedding", False)
  kw = {"embed_dim": 6, "hidden": 8, **kw}
  return seq2seq.Seq2Seq(src_vocab=V_TGT if shared else V_SRC, tgt_vocab=V_TGT, **kw)


def _batch(model, key=0, B=5, S=7, T=6):
  k1, k2 = jax.random.split(jax.random.key(key))
  src = jax.random.randint(k1, (B, S), 3, model.src_vocab)
  src_len = jnp.array([7, 3, 5, 1, 6][:B], jnp.int32)
  src = jnp.where(jnp.arange(S)[None] < src_len[:, None], src, PAD)
  tgt_in = jnp.concatenate([jnp.full((B, 1), START), jax.random.randint(k2, (B, T - 1), 3, V_TGT)], 1)
  return {"src": src, "src_len": src_len, "tgt_in": tgt_in}


def test_shared_embedding_removes_one_table():
  base = seq2seq.Seq2Seq(src_vocab=V_TGT, tgt_vocab=V_TGT, embed_dim=6, hidden=8)
  shared = _model(shared_embedding=True)  # one vocabulary of V_TGT symbols
  n_base = seq2seq.num_params(base.init(jax.random.key(0)))
  n_shared = seq2seq.num_params(shared.init(jax.random.key(0)))
  assert n_base - n_shared == V_TGT * 6
  p = shared.init(jax.random.key(0))
  assert "embed" in p and "src_embed" not in p and "tgt_embed" not in p


@pytest.mark.slow
def test_peeky_and_attention_add_their_parameters():
  H = 8
  n = lambda m: seq2seq.num_params(m.init(jax.random.key(0)))  # noqa: E731
  assert n(_model(peeky=True)) - n(_model()) == H * 4 * H + H * V_TGT  # input share + read-out
  assert n(_model(attention="dot")) - n(_model()) == H * V_TGT           # read-out of the context
  assert n(_model(attention="additive", attention_dim=5)) - n(_model(attention="dot")) == 2 * H * 5 + 5


def test_reverse_padded_reverses_only_the_real_part():
  ids = jnp.array([[1, 2, 3, 0], [4, 5, 6, 7]])
  np.testing.assert_array_equal(seq2seq.reverse_padded(ids, jnp.array([3, 4])),
                                [[3, 2, 1, 0], [7, 6, 5, 4]])
  np.testing.assert_array_equal(seq2seq.reverse_padded(ids, None), ids[:, ::-1])


@pytest.mark.slow
def test_reversed_variant_reads_the_input_backwards():
  fwd, rev = _model(), _model(reverse_input=True)
  p = fwd.init(jax.random.key(1))  # same parameter structure
  b = _batch(fwd)
  flipped = dict(b, src=seq2seq.reverse_padded(b["src"], b["src_len"]))
  np.testing.assert_allclose(rev.apply(p, b), fwd.apply(p, flipped), atol=1e-6)
  assert not np.allclose(rev.apply(p, b), fwd.apply(p, b), atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["baseline", "peeky", "additive", "bidirectional", "one_hot"])
def test_padding_of_the_source_is_irrelevant(name):
  m = _model(**VARIANTS[name])
  p = m.init(jax.random.key(2))
  b = _batch(m)
  pad_mask = jnp.arange(7)[None] >= b["src_len"][:, None]
  other = dict(b, src=jnp.where(pad_mask, 5, b["src"]))  # different symbols in the padding
  np.testing.assert_allclose(m.apply(p, b), m.apply(p, other), atol=1e-6)


def test_masked_target_positions_do_not_count():
  logits = jax.random.normal(jax.random.key(0), (2, 4, V_TGT))
  targets = jnp.array([[3, 4, 2, 0], [5, 2, 0, 0]])
  mask = jnp.array([[1, 1, 1, 0], [1, 1, 0, 0]], jnp.float32)
  loss, m = seq2seq.token_loss(logits, targets, mask)
  noisy = logits.at[:, 3].add(100.0).at[1, 2].add(-50.0)   # change only padded positions
  loss2, m2 = seq2seq.token_loss(noisy, targets.at[1, 3].set(7), mask)
  np.testing.assert_allclose(loss, loss2, rtol=1e-6)
  assert float(m["loss"].count) == 5.0
  lp = jax.nn.log_softmax(logits)
  want = -(lp[0, 0, 3] + lp[0, 1, 4] + lp[0, 2, 2] + lp[1, 0, 5] + lp[1, 1, 2]) / 5
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose(m2["char_acc"].total, m["char_acc"].total)


def test_attention_ignores_padded_memory_and_sums_to_one():
  q = jax.random.normal(jax.random.key(0), (2, 3, 4))
  mem = jax.random.normal(jax.random.key(1), (2, 5, 4))
  mask = jnp.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], jnp.float32)
  for kind in attention.KINDS:
    p = attention.init(kind, jax.random.key(2), 4, 4, 3)
    ctx, w = attention.attend(kind, p, q, mem, mask)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    assert float(jnp.abs(w[0, :, 2:]).max()) == 0.0
    np.testing.assert_allclose(ctx[0], w[0, :, :2] @ mem[0, :2], rtol=1e-5, atol=1e-6)


def _reference_decode(model, params, src, src_len, max_len, end_id):
  """The notes' inference loop, one character at a time: re-run the teacher-forced
  model on the prefix decoded so far and take the argmax at its last position. The
  decoder is causal, so each prefix is padded to ``max_len`` (one compilation) and
  the rows, independent, go through together."""
  apply = jax.jit(model.apply)
  B = src.shape[0]
  prefix = np.full((B, max_len), START, np.int32)
  out, done = [[] for _ in range(B)], np.zeros(B, bool)
  for k in range(max_len):
    logits = apply(params, {"src": src, "src_len": src_len, "tgt_in": jnp.asarray(prefix)})
    tok = np.asarray(jnp.argmax(logits[:, k], -1))
    for i in np.nonzero(~done)[0]:
      out[i].append(int(tok[i]))
      done[i] = end_id is not None and tok[i] == end_id
    if k + 1 < max_len:
      prefix[:, k + 1] = tok
  return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_greedy_scan_under_jit_equals_step_by_step_decoding(name):
  m = _model(**VARIANTS[name])
  b = _batch(m, key=4)
  decode = lambda p, s, n: m.greedy(p, s, n, max_len=6, start_id=START, end_id=END,  # noqa: E731
                                    pad_id=PAD)
  init = m.init(jax.random.key(3))

  def params_at(scale, bias):
    p = jax.tree.map(lambda x: x * scale, init)
    p["out"]["b"] = p["out"]["b"].at[END].set(bias)
    return p

  # Larger weights make the random model's outputs depend on its input, and a bias
  # on END makes it stop at different steps in different rows: the per-sequence
  # stopping is what this test is about. The first setting that does, of the grid
  # decoded at once (one vmap).
  grid = list(itertools.product((3.0, 2.0, 4.0), np.linspace(-3.0, 3.0, 121)))
  lens_of = jax.jit(jax.vmap(lambda sc, bi: decode(params_at(sc, bi), b["src"], b["src_len"])[1]))
  all_lens = np.asarray(lens_of(*(jnp.asarray(v, jnp.float32) for v in zip(*grid))))
  hit = next((i for i, l in enumerate(all_lens) if len(set(l.tolist()) - {1}) >= 2), None)
  if hit is None:
    pytest.fail("no END bias gives varied decode lengths")
  p = params_at(*grid[hit])
  toks, lens = jax.jit(decode)(p, b["src"], b["src_len"])
  ref = _reference_decode(m, p, b["src"], b["src_len"], 6, END)
  for i, r in enumerate(ref):
    assert list(np.asarray(toks[i, :len(r)])) == r
    assert int(lens[i]) == len(r)
    assert (np.asarray(toks[i, len(r):]) == PAD).all()


def test_fixed_length_greedy_without_end_symbol():
  m = _model(peeky=True)
  p = m.init(jax.random.key(5))
  b = _batch(m)
  toks, lens = m.greedy(p, b["src"], b["src_len"], max_len=4, start_id=START)
  ref = _reference_decode(m, p, b["src"], b["src_len"], 4, None)
  np.testing.assert_array_equal(toks, np.asarray(ref))
  assert (np.asarray(lens) == 4).all()


@pytest.mark.slow
def test_variants_learn_to_copy_a_short_sequence():
  """Smoke: 50 Adam steps teach each kind of variant to copy 3 symbols (plain, peeky and
  reversed, additive attention, bidirectional with dot attention, GRU, one-hot inputs)."""
  import optax
  rng = np.random.default_rng(0)
  src = rng.integers(3, V_TGT, (256, 3)).astype(np.int32)
  batch = {"src": jnp.asarray(src), "tgt_in": jnp.asarray(np.c_[np.full(256, START), src[:, :2]]),
           "tgt_out": jnp.asarray(src)}
  for name in ("baseline", "peeky", "additive", "bidirectional", "gru", "one_hot"):
    m = seq2seq.Seq2Seq(src_vocab=V_TGT, tgt_vocab=V_TGT,
                        **{"embed_dim": 6, "hidden": 16, **VARIANTS[name]})
    p = m.init(jax.random.key(0))
    tx = optax.adam(0.03)
    opt = tx.init(p)

    def step(carry, _):
      p, opt = carry
      (loss, _), g = jax.value_and_grad(
          lambda p: seq2seq.token_loss(m.apply(p, batch), batch["tgt_out"]), has_aux=True)(p)
      u, opt = tx.update(g, opt, p)
      return (optax.apply_updates(p, u), opt), loss

    _, losses = jax.jit(lambda p, opt: jax.lax.scan(step, (p, opt), None, length=50))(p, opt)
    first, loss = float(losses[0]), float(losses[-1])
    assert loss < 0.3 * first, (name, first, loss)


def _peaked(m, key, end_bias=0.0):
  """Random parameters scaled up (outputs that depend on the input), END's bias set."""
  p = jax.tree.map(lambda x: x * 3.0, m.init(jax.random.key(key)))
  p["out"]["b"] = p["out"]["b"].at[END].set(end_bias)
  return p


@pytest.mark.parametrize("name", ["baseline", "additive", "bidirectional", "gru"])
def test_beam_of_one_is_greedy(name):
  m = _model(**VARIANTS[name])
  b = _batch(m, key=2)
  kw = dict(max_len=6, start_id=START, end_id=END, pad_id=PAD)
  greedy = jax.jit(lambda p: m.greedy(p, b["src"], b["src_len"], **kw))
  for bias in np.linspace(-3.0, 3.0, 25):  # the first END bias with rows ending apart
    p = _peaked(m, 7, end_bias=bias)
    toks, lens = greedy(p)
    if len(set(np.asarray(lens).tolist())) >= 2:
      break
  btoks, blens, _ = jax.jit(lambda p: m.beam_search(p, b["src"], b["src_len"], beam=1, **kw))(p)
  np.testing.assert_array_equal(btoks, toks)
  np.testing.assert_array_equal(blens, lens)
  assert len(set(np.asarray(lens).tolist())) >= 2  # rows stopped at different steps


def _exhaustive_best(m, p, src, src_len, L, end_id):
  """Every symbol string of length ``L`` scored by teacher forcing (after ``end_id`` only
  PAD, at no cost): ``(tokens_BxL, log_prob_B)`` of each row's best."""
  seqs = np.array(list(itertools.product(range(m.tgt_vocab), repeat=L)), np.int32)  # N x L
  after_end = np.zeros(seqs.shape, bool)
  for t in range(1, L):
    after_end[:, t] = after_end[:, t - 1] | (seqs[:, t - 1] == end_id)
  valid = ~(after_end & (seqs != PAD)).any(1)
  N = len(seqs)
  tgt_in = jnp.asarray(np.concatenate([np.full((N, 1), START), seqs[:, :-1]], 1))
  best_tok, best_lp = [], []
  logp_of = jax.jit(lambda s, n: jax.nn.log_softmax(m.decode(p, m.encode(p, s, n), tgt_in), -1))
  for i in range(src.shape[0]):
    logp = np.asarray(logp_of(jnp.repeat(src[i:i + 1], N, 0), jnp.repeat(src_len[i:i + 1], N, 0)))
    lp = np.where(after_end, 0.0, np.take_along_axis(logp, seqs[..., None], -1)[..., 0]).sum(1)
    lp[~valid] = -np.inf
    best_tok.append(seqs[np.argmax(lp)])
    best_lp.append(lp.max())
  return np.stack(best_tok), np.array(best_lp)


@pytest.mark.parametrize("end_id", [END, None])
def test_a_wide_beam_finds_the_best_scoring_hypothesis(end_id):
  # 5 symbols, 3 steps: a beam of 25 keeps every 2-symbol prefix, so its result
  # is the exhaustive optimum over all 125 strings; greedy misses it in some rows.
  m = seq2seq.Seq2Seq(src_vocab=V_SRC, tgt_vocab=5, embed_dim=6, hidden=8, attention="dot")
  b = _batch(m, key=1)
  p = _peaked(m, 11, end_bias=0.0)
  kw = dict(max_len=3, start_id=START, end_id=end_id, pad_id=PAD)
  want_tok, want_lp = _exhaustive_best(m, p, b["src"], b["src_len"], 3, end_id)
  toks, lens, lp = m.beam_search(p, b["src"], b["src_len"], beam=25, **kw)
  np.testing.assert_array_equal(toks, want_tok)
  np.testing.assert_allclose(lp, want_lp, rtol=1e-5)
  ends = [t.index(end_id) + 1 if end_id in t else 3 for t in want_tok.tolist()]
  assert np.asarray(lens).tolist() == ends
  g_toks, _ = m.greedy(p, b["src"], b["src_len"], **kw)
  assert (np.asarray(g_toks) != want_tok).any()  # the case needs the search
  _, _, lp2 = m.beam_search(p, b["src"], b["src_len"], beam=2, **kw)
  assert (np.asarray(lp2) <= want_lp + 1e-5).all()


@pytest.mark.parametrize("cell, bidirectional", [("lstm", False), ("gru", False), ("lstm", True)])
def test_a_stacked_encoder_runs_the_same_layer_by_layer_and_as_a_wavefront(cell, bidirectional):
  kw = dict(src_vocab=13, tgt_vocab=11, embed_dim=8, hidden=16, cell=cell, encoder_layers=3,
            attention="dot", bidirectional=bidirectional)
  layers = seq2seq.Seq2Seq(**kw, order="layers")
  params = layers.init(jax.random.key(0))
  assert isinstance(params["encoder"], list) and len(params["encoder"]) == 3
  rng = np.random.default_rng(0)
  batch = {"src": jnp.asarray(rng.integers(1, 13, (4, 7))), "src_len": jnp.asarray([7, 3, 5, 1]),
           "tgt_in": jnp.asarray(rng.integers(1, 11, (4, 5)))}
  if bidirectional:  # a bidirectional layer reads all of the layer below: no wavefront
    with pytest.raises(ValueError, match="wavefront order needs one direction"):
      seq2seq.Seq2Seq(**kw, order="wavefront").apply(params, batch)
    return
  wave = seq2seq.Seq2Seq(**kw, order="wavefront")
  loss = lambda m: lambda p: jnp.sum(jnp.tanh(m.apply(p, batch)))  # noqa: E731
  np.testing.assert_allclose(wave.apply(params, batch), layers.apply(params, batch),
                             rtol=1e-5, atol=1e-6)
  for g_w, g_l in zip(jax.tree.leaves(jax.grad(loss(wave))(params)),
                      jax.tree.leaves(jax.grad(loss(layers))(params))):
    np.testing.assert_allclose(g_w, g_l, rtol=1e-4, atol=1e-6)


def test_one_encoder_layer_keeps_the_layout_of_one_layer_checkpoints():
  one = seq2seq.Seq2Seq(src_vocab=5, tgt_vocab=5, hidden=4).init(jax.random.key(0))
  assert set(one["encoder"]) == {"w_x", "w_rec", "b"}
  bi = seq2seq.Seq2Seq(src_vocab=5, tgt_vocab=5, hidden=4, bidirectional=True)
  assert set(bi.init(jax.random.key(0))["encoder"]) == {"fwd", "bwd"}
  with pytest.raises(ValueError, match="encoder_layers=0: expected at least one layer"):
    seq2seq.Seq2Seq(src_vocab=5, tgt_vocab=5, encoder_layers=0)
