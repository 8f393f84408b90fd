"""Tiny TFDS builders prepared on the fly in array_record format (no network, no TensorFlow)."""
import types

import numpy as np


def _prepare(class_name, config, features, splits, data_dir):
  """Prepares ``{split: [record, ...]}`` as ``<snake name>/<config>/1.0.0`` under ``data_dir``."""
  import tensorflow_datasets as tfds
  tfds.disable_progress_bar()

  def body(ns):
    ns["VERSION"] = tfds.core.Version("1.0.0")
    ns["BUILDER_CONFIGS"] = [tfds.core.BuilderConfig(name=config)]
    ns["_info"] = lambda self: tfds.core.DatasetInfo(builder=self, features=features(tfds))
    ns["_split_generators"] = lambda self, dl: {
        s: self._generate_examples(rows) for s, rows in splits.items()}
    ns["_generate_examples"] = lambda self, rows: ((i, r) for i, r in enumerate(rows))

  cls = types.new_class(class_name, (tfds.core.GeneratorBasedBuilder,),
                        {"skip_registration": True}, body)
  cls(config=config, data_dir=str(data_dir), file_format="array_record").download_and_prepare()


def sentence_pairs(data_dir, splits):
  """A ``glue/stsb``-shaped dataset: ``sentence1``, ``sentence2``, ``label`` (0-5), ``idx``."""
  rows = {s: [{"sentence1": a, "sentence2": b, "label": np.float32(y), "idx": np.int32(i)}
              for i, (a, b, y) in enumerate(pairs)] for s, pairs in splits.items()}
  features = lambda tfds: tfds.features.FeaturesDict({  # noqa: E731
      "sentence1": tfds.features.Text(), "sentence2": tfds.features.Text(),
      "label": np.float32, "idx": np.int32})
  _prepare("Glue", "stsb", features, rows, data_dir)
  return "glue/stsb"


def translation(data_dir, splits, languages=("en", "fr")):
  """A TFDS translation dataset (``tfds.features.Translation``): one field per language."""
  rows = {s: [dict(zip(languages, p)) for p in pairs] for s, pairs in splits.items()}
  features = lambda tfds: tfds.features.Translation(languages=languages)  # noqa: E731
  config = f"{languages[0]}_to_{languages[1]}"
  _prepare("TinyTranslate", config, features, rows, data_dir)
  return f"tiny_translate/{config}"


def text(data_dir, splits):
  """An ``lm1b``-shaped text dataset: one ``text`` field per record."""
  rows = {s: [{"text": t} for t in texts] for s, texts in splits.items()}
  features = lambda tfds: tfds.features.FeaturesDict({"text": tfds.features.Text()})  # noqa: E731
  _prepare("TinyText", "plain", features, rows, data_dir)
  return "tiny_text/plain"
