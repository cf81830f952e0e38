"""Downstream classifiers: model zoo, training, metrics, evaluation on synthetic sets, features."""
