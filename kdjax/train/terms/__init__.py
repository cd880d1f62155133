"""Loss terms by name: the registry (`base`) and the modules that register terms into it."""
from kdjax.train.terms.base import (MAIN_VIEW, TERMS, DataFacts, Needs, Term, TermInputs, ViewOutputs, WeightedTerm,
                                    build_term, build_terms, options_of, register)
from kdjax.train.terms import feature_zoo, icd, jacobian, logits, metric, multilabel, s2sd, zoo  # noqa: F401  (registration)

__all__ = ["MAIN_VIEW", "TERMS", "DataFacts", "Needs", "Term", "TermInputs", "ViewOutputs", "WeightedTerm",
           "build_term", "build_terms", "options_of", "register"]
