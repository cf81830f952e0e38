"""What the `{model}` wildcard of classifier and segmenter paths may name (light: the rules
import it). Models are `meddap.cls.registry`'s and `meddap.seg.registry`'s; training sets are
`meddap.trainsets`'.
"""

# any such name, so that a misspelt one reaches the rules' input functions, which stop naming the
# registry's models
MODEL_WILDCARD = r"[a-z0-9_]+(-[a-z0-9]+)*"
