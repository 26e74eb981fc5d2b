"""scikit-learn's handwritten digits as a TFDS dataset: the offline default.

``sklearn.datasets.load_digits`` ships with scikit-learn (1,797 grey 8x8 images of the digits 0-9,
pixel values 0..16, from the UCI "Optical Recognition of Handwritten Digits" data). Writing it as a
``tfds.core.GeneratorBasedBuilder`` makes it go through TFDS's real prepare path (tfrecord shards,
``dataset_info.json`` in a data dir) and read path (``builder.as_dataset``), exactly like a catalogue
dataset, without any network.

The split is fixed: a stratified 80/20 train/test split with seed 0 (1,437 / 360 examples), so the
same examples are in each split on every machine.
"""

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = 0
TEST_FRACTION = 0.2


def split_indices():
    """Indices of the (train, test) examples of ``load_digits()``: stratified, seed 0, 80/20."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    labels = load_digits().target
    return train_test_split(
        np.arange(labels.size), test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )


class SklearnDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's handwritten digits (8x8, 10 classes) with a fixed stratified 80/20 split.

    Registered with TFDS as ``sklearn_digits``. Features: ``image`` uint8 (8, 8, 1) with values
    0..16 (as scikit-learn gives them; not rescaled), ``label`` 0..9.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "scikit-learn load_digits, stratified 80/20 split with seed 0."}

    def _info(self):
        # DatasetInfo directly: ``dataset_info_from_configs`` looks for metadata files (README,
        # CITATIONS.bib) next to the module, which a builder defined in a script does not have.
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "scikit-learn's copy of the UCI Optical Recognition of Handwritten Digits test "
                "set: 1,797 8x8 images, 16 grey levels, 10 classes."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
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
