"""The class labels every stage shares, in the order of model outputs."""

CLASSES = ("normal", "benign", "malignant")
LESION_CLASSES = ("benign", "malignant")  # the classes with a lesion (external tests, masks)
UNKNOWN = "unknown"  # the label of every image of a dataset without classes (stu)
