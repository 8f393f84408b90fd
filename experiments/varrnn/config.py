"""Variational RNN pair classifier (notes 000) and its comparisons.

Variants (``config.py:<variant>``):

  notes      the notes' run: one weight sample per example (vmap), one shared
             log sigma (init 0.01), prior N(0, 1000^2), closed-form KL, all
             means initialised at zero, adagrad 0.01, batch 25, 85/15 split
  minibatch  as notes, one weight sample shared by the minibatch
  flipout    as notes, flipout perturbations (Wen et al. 2018)
  bbb        Bayes by Backprop for RNNs (Fortunato et al. 2017): one sample per
             minibatch, a sigma per weight, scale-mixture prior (pi 0.25,
             sigma1 1, sigma2 e^-6; KL by Monte Carlo), random init, posterior
             mean at test
  map        the deterministic (MAP) twin: the same network, a point estimate,
             the prior as an L2 penalty, random init
  bow        MAP with a bag-of-words encoder (mean of the word vectors): the
             control that shows the embedded task needs word order

  python -m experiments.varrnn.main --config=experiments/varrnn/config.py:notes \
      --workdir=runs/varrnn/notes
  python -m experiments.varrnn.compare --out=runs/varrnn/compare   # variants side by side
  # STS-Benchmark (scores rounded to 6 classes, the notes' task), GloVe 50-d vectors:
  python -m experiments.varrnn.main --config=experiments/varrnn/config.py:notes \
      --config.data.format=stsb --config.data.path=sts-train.csv \
      --config.data.test_path=sts-dev.csv --config.data.vectors=glove.6B.50d.txt \
      --workdir=runs/varrnn/stsb
  # SICK (one file: TRAIN + TRIAL train, TEST tests), the settings that learn on it side by
  # side: experiments/varrnn/sick.py (0.413 balanced macro-F1 with a GRU encoder; about 12 min
  # on 2 cores for every setting)
  # A prepared TFDS dataset (array_record; WORKSPACE.md, 'TFDS'), e.g. GLUE STS-B:
  python -m experiments.varrnn.main --config=experiments/varrnn/config.py:map \
      --config.data.tfds=glue/stsb --config.data.tfds_dir=$DATA/tfds \
      --config.model.embeddings=learned --workdir=runs/varrnn/tfds_stsb

Every ``trainer.eval_every_epochs`` epochs: the mean negative ELBO of the epoch (the
notes' "evidence"), train macro-F1, and macro-F1 on ``data.eval_draws``
class-balanced draws of the test set (mean and std), for each predictor:
``sample`` (one weight sample per example: the notes' ``predict_fn``), ``mean``
(the posterior mean) and ``average`` (probabilities averaged over
``eval.num_samples`` samples); plus expected calibration error and NLL.

Runtime and results on the embedded task (2-core CPU): see README.md beside this file
("Variational RNN (notes 000)"); the notes' own run reached balanced test
macro-F1 0.318 after 30 epochs on their SemEval data.
"""
import math

import ml_collections

from lib.runtime import configs
from lib.train import optim, trainer

# One dict of dotted overrides per variant, applied to the base config (the notes' run).
VARIANTS = {
    "notes": {},
    "minibatch": {"vi.sampling": "minibatch"},
    "flipout": {"vi.sampling": "flipout"},
    "bbb": {"vi.sampling": "minibatch", "vi.sigma": "weight", "vi.prior": "mixture",
            "vi.log_sigma_init": math.log(0.01), "model.init": "inv_sqrt_fan_in",
            "eval.predictor": "mean"},
    "map": {"vi.sampling": "none", "model.init": "inv_sqrt_fan_in", "eval.predictor": "mean"},
    "bow": {"vi.sampling": "none", "model.init": "inv_sqrt_fan_in", "model.cell": "bow",
            "eval.predictor": "mean"},
}


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  c = configs.start("varrnn", variant or "notes", VARIANTS)
  c.seed = 0
  c.data = ml_collections.ConfigDict(dict(
      format="generated",   # generated | pairs (A<TAB>B<TAB>label) | stsb | sick
      path="",              # the training file (or the only file: split test_fraction off its
                            # end; sick: TRAIN + TRIAL rows train, TEST rows test)
      test_path="",         # a separate test file (STS-B: sts-dev.csv or sts-test.csv)
      vectors="",           # word2vec/GloVe text file for model.embeddings='fixed'
      tfds="",              # a prepared TFDS dataset instead of files (glue/stsb; WORKSPACE.md)
      tfds_dir="",          # its data_dir ('' = ~/tensorflow_datasets)
      tfds_splits="train,validation",          # train, test (glue/stsb's test has no labels)
      tfds_fields="sentence1,sentence2,label",  # sentence A, sentence B, score or class
      num=6000,             # generated pairs
      gen_seed=0,
      min_len=6,            # generated sentence lengths (markers included)
      max_len=0,            # cap on tokens per sentence (0: the longest; generated: 20)
      test_fraction=0.15,   # the notes' 85/15 split (first 85% train)
      min_count=1,          # training words seen fewer times map to <unk>
      num_classes=6,
      batch_size=25,
      shuffle_seed=0,       # minibatch order; -1: follow `seed` (fixed: a sweep over seeds vmaps)
      eval_draws=10,        # class-balanced draws of the test set (notes: 10)
      draw_seed=0,
      eval_batch_size=500,
  ))
  c.model = ml_collections.ConfigDict(dict(
      input_dim=50,         # word-vector size (taken from the vectors when they are given)
      hidden=50,
      cell="elman",         # any lib.nn.cells name (the notes' tanh Elman: elman) | bow
      features="concat",    # concat (the notes: [h_A, h_B]) | match (+ |h_A - h_B|, h_A * h_B)
      embeddings="fixed",   # fixed (word vectors as inputs, the notes) | learned
      init="zeros",         # the notes' zero means; or an initializer name
      unroll=1,
  ))
  c.vi = ml_collections.ConfigDict(dict(
      sampling="example",   # example (vmap) | minibatch | flipout | none (MAP)
      sigma="shared",       # shared | group | weight
      log_sigma_init=math.log(0.01),
      prior="gaussian",     # gaussian | mixture
      prior_sigma=1000.0,   # the notes: log sigma_prior = log 1000
      mixture_pi=0.25,
      mixture_sigma1=1.0,
      mixture_sigma2=math.exp(-6.0),
      kl="auto",            # auto | closed | mc | notes (the notes' expression: model.kl_notes)
      kl_samples=1,
      kl_anneal_epochs=0,   # > 0: the KL weight rises linearly from 0 to 1 over these epochs
      kl_weight=1.0,        # a constant factor on the KL term (1: the ELBO)
  ))
  c.eval = ml_collections.ConfigDict(dict(
      predictor="sample",   # headline predictor: sample (the notes) | mean | average
      num_samples=10,       # posterior samples averaged by the 'average' predictor
      seed=0,               # the evaluation's weight samples (apart from `seed`: the trials of
                            # a sweep are scored on the same draws, and vmap)
      ece_bins=15,
  ))
  # Lasagne's adagrad as the notes copy it: accumulator from 0, eps 1e-6.
  c.optimizer = optim.default_config("adagrad", 0.01, initial_accumulator=0.0, eps=1e-6)
  c.trainer = trainer.default_config(num_epochs=30, eval_every_epochs=10,  # as the notes
                                     log_every_epochs=1, checkpoint_every_epochs=1,
                                     flush_every=50)
  return configs.finish(c, VARIANTS)
