"""The paper's reported numbers, typed in from its text, to print beside ours.

These are quotations for comparison only: nothing in the pipeline reads them to choose,
tune or check a result. Accuracies are fractions; ``None`` means the paper gives no number
(some values appear only as points in a figure).
"""
from __future__ import annotations

# §4.1 Experiment 1: trained on RaFD + Oulu-CASIA (109 train / 10 val / 25 test subjects).
EXP1_REAL = {"train": 0.845, "test": 0.696, "mmi": 0.45}

# §4.2 Experiment 2: trained on 109 generated identities.
EXP2_SYNTH = {"train": 0.9984, "test": 0.976, "mmi": 0.47}

# Table 2, Experiment 3: RFEs + k x GFEs, (training accuracy, testing accuracy on the mixed test set).
TABLE2_MIX = {
    1: (0.91, 0.853), 2: (0.938, 0.89), 3: (0.948, 0.927), 4: (0.958, 0.925), 5: (0.976, 0.943),
    6: (0.978, 0.94), 10: (0.979, 0.951), 15: (0.989, 0.955), 20: (0.989, 0.97),
}

# §4.3 / Figure 8: the best cross-database MMI accuracy, at k = 5 (other points only plotted).
FIG8_BEST = {"ratio": 5, "mmi": 0.583}

# §4.4: VGG16 on MMI, and the best CNN (RFEs + 5 x GFEs) on CK+ (Table 3, row 1).
VGG16_MMI = 0.5408
BEST_CKPLUS = 0.8749

# Table 3: cross-database accuracies on CK+ quoted by the paper from the literature.
TABLE3_LITERATURE = [
    ("Proposed method (paper)", "RaFD + Oulu-CASIA + GAN", 0.8749),
    ("Porcu et al., 2020", "KDEF", 0.8330),
    ("da Silva and Pedrini, 2015", "MUG", 0.4560),
    ("da Silva and Pedrini, 2015", "JAFFE", 0.4820),
    ("da Silva and Pedrini, 2015", "BOSPHOROUS", 0.5760),
    ("Lekdioui et al., 2017", "KDEF", 0.7885),
    ("Gu et al., 2012", "JAFFE", 0.5405),
    ("Hasani and Mahoor, 2017", "MMI + FERA", 0.7391),
    ("Mollahosseini et al., 2016", "MultiPIE, MMI, CK+, DISFA, FERA, SFEW, FER2013", 0.6420),
    ("Zavarez et al., 2017", "CK+, JAFFE, MMI, RaFD, KDEF, BU-3DFE, ARFace", 0.8858),
]


def reported(experiment: str, ratio: int = 0) -> dict[str, float]:
    """What the paper reports for one configuration (accuracy by split or database), possibly nothing."""
    if experiment == "real" or (experiment == "mix" and ratio == 0):
        return dict(EXP1_REAL)
    if experiment == "synth":
        return dict(EXP2_SYNTH) if ratio == 1 else {}
    if experiment == "mix-filtered":
        return {}
    if experiment == "vgg":
        return {"mmi": VGG16_MMI} if ratio == 0 else {}
    out = dict(zip(("train", "test"), TABLE2_MIX.get(ratio, (None, None))))
    if ratio == FIG8_BEST["ratio"]:
        out |= {"mmi": FIG8_BEST["mmi"], "ckplus": BEST_CKPLUS}
    return {k: v for k, v in out.items() if v is not None}
