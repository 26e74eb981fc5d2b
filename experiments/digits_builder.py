"""scikit-learn's handwritten digits as a TFDS dataset: the offline default.

``sklearn.datasets.load_digits`` ships with scikit-learn (1,797 grey 8x8 images of the digits 0-9,
pixel values 0..16, from the UCI "Optical Recognition of Handwritten Digits" data). Writing it as a
``tfds.core.GeneratorBasedBuilder`` makes it go through TFDS's real prepare path (tfrecord shards,
``dataset_info.json`` in a data dir) and read path (``builder.as_dataset``), exactly like a catalogue
dataset, without any network.

The split is fixed: a stratified 80/20 train/test split with seed 0 (1,437 / 360 examples), so the
same examples are in each split on every machine.

Its TFDS name is ``digits``, the name the ``kav`` commands take. Data dirs prepared before the
rename hold it as ``sklearn_digits/1.0.0``: the same examples; ``digits`` is prepared next to it
on first use (a few seconds, offline), and the old folder may be deleted.
"""

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = 0
TEST_FRACTION = 0.2
FORMER_NAME = "sklearn_digits"  # the TFDS name before the CLI's and TFDS's names were made one

DESCRIPTION = (
    "scikit-learn's copy of the test set of the UCI Optical Recognition of Handwritten Digits data "
    "(sklearn.datasets.load_digits): 1,797 grey 8x8 images of the digits 0-9, 16 grey levels "
    "(pixel values 0..16): 32x32 bitmaps by 13 writers, each 4x4 block's set pixels counted. Built offline "
    "from the copy scikit-learn ships; split here into a stratified 80/20 train/test split with "
    "seed 0 (1,437 / 360 examples)."
)
HOMEPAGE = "https://scikit-learn.org/stable/datasets/toy_dataset.html#optical-recognition-of-handwritten-digits-dataset"
# UCI's citation of the data set (the one scikit-learn's documentation points to).
CITATION = """@misc{alpaydin1998optical,
  author       = {Alpaydin, E. and Kaynak, C.},
  title        = {{Optical Recognition of Handwritten Digits}},
  year         = {1998},
  howpublished = {UCI Machine Learning Repository},
  doi          = {10.24432/C50P49},
  url          = {https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits}
}"""
LICENSE = (
    "Creative Commons Attribution 4.0 International (CC BY 4.0), the license of the UCI Machine "
    "Learning Repository data set; scikit-learn, which ships the copy used here, is BSD-3-Clause."
)


def split_indices():
    """Indices of the (train, test) examples of ``load_digits()``: stratified, seed 0, 80/20."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    labels = load_digits().target
    return train_test_split(
        np.arange(labels.size), test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's handwritten digits (8x8, 10 classes) with a fixed stratified 80/20 split.

    Registered with TFDS as ``digits``. Features: ``image`` uint8 (8, 8, 1) with values
    0..16 (as scikit-learn gives them; not rescaled), ``label`` 0..9.
    """

    name = "digits"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "scikit-learn load_digits, stratified 80/20 split with seed 0."}

    def _info(self):
        # DatasetInfo directly: ``dataset_info_from_configs`` looks for metadata files (README,
        # CITATIONS.bib) next to the module, which a builder defined in a script does not have.
        return tfds.core.DatasetInfo(
            builder=self,
            description=DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage=HOMEPAGE,
            citation=CITATION,
            license=LICENSE,
        )

    def _split_generators(self, dl_manager):
        train, test = split_indices()
        return {"train": self._generate_examples(train), "test": self._generate_examples(test)}

    def _generate_examples(self, indices):
        from sklearn.datasets import load_digits

        digits = load_digits()
        for i in indices:
            image = digits.images[i].astype(np.uint8)[..., None]
            yield int(i), {"image": image, "label": int(digits.target[i])}


SklearnDigits = Digits  # the class's name before the rename, for code that imported it
