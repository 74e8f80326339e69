"""The guidelines behind treatment scoring: sources, weights, deadlines and Vigil's conventions.

Sources:
- SSC 2021: Evans L, Rhodes A, Alhazzani W, et al. Surviving Sepsis Campaign: international
  guidelines for management of sepsis and septic shock 2021. Crit Care Med 2021;49:e1063-e1143.
- SSC hour-1 bundle: Levy MM, Evans LE, Rhodes A. The Surviving Sepsis Campaign bundle: 2018
  update. Crit Care Med 2018;46:997-1000.
- RCP NEWS2 2017: Royal College of Physicians. National Early Warning Score (NEWS) 2. London: RCP,
  2017 (chart 3: clinical response; table "NEWS thresholds and triggers").
"""

from __future__ import annotations

SSC_2021 = (
    "Evans L et al. Surviving Sepsis Campaign: international guidelines for management of sepsis "
    "and septic shock 2021. Crit Care Med 2021;49:e1063-e1143"
)
SSC_HOUR1_2018 = (
    "Levy MM, Evans LE, Rhodes A. The Surviving Sepsis Campaign bundle: 2018 update. Crit Care Med 2018;46:997-1000"
)
RCP_NEWS2_2017 = (
    "Royal College of Physicians. National Early Warning Score (NEWS) 2. London: RCP, 2017 (chart 3, clinical response)"
)

# Points per guideline item before normalization over the items that apply (sum 100). Antibiotic
# timing weighs most: SSC 2021's strongest time-critical recommendation (mortality rises with each
# hour of delay in shock); fluids and vasopressors next (hypoperfusion); diagnostics after.
WEIGHTS: dict[str, float] = {
    "antibiotics": 25.0,
    "crystalloid_30ml_kg": 15.0,
    "vasopressor_map_65": 15.0,
    "blood_cultures_before_antibiotics": 10.0,
    "lactate_measured": 10.0,
    "lactate_remeasured": 5.0,
    "news2_observation_frequency": 10.0,
    "news2_escalation": 10.0,
}

SOURCES: dict[str, str] = {
    "antibiotics": f"{SSC_2021} (recs 20-21: within 1 h for possible shock or probable sepsis; "
    f"within 3 h for possible sepsis without shock); {SSC_HOUR1_2018}",
    "crystalloid_30ml_kg": f"{SSC_2021} (rec 7: at least 30 mL/kg IV crystalloid within the first 3 h "
    f"for sepsis-induced hypoperfusion); {SSC_HOUR1_2018} (hypotension or lactate >= 4 mmol/L)",
    "vasopressor_map_65": f"{SSC_HOUR1_2018} (vasopressors if hypotensive during or after fluids to keep "
    f"MAP >= 65 mmHg); {SSC_2021} (recs 13, 44: initial MAP target 65 mmHg, noradrenaline first line)",
    "blood_cultures_before_antibiotics": f"{SSC_HOUR1_2018} (blood cultures before antibiotics); "
    f"{SSC_2021} (best-practice statement: cultures before antimicrobials if no substantial delay)",
    "lactate_measured": f"{SSC_HOUR1_2018} (measure lactate); {SSC_2021} (rec 5: measure blood lactate)",
    "lactate_remeasured": f"{SSC_HOUR1_2018} (remeasure if initial lactate > 2 mmol/L, within 2-4 h); "
    f"{SSC_2021} (rec 6: guide resuscitation to decrease lactate)",
    "news2_observation_frequency": f"{RCP_NEWS2_2017}: minimum frequency 12-hourly (0), 4-6-hourly "
    "(1-4), hourly (3 in one parameter or 5-6), continuous monitoring (>= 7)",
    "news2_escalation": f"{RCP_NEWS2_2017}: 3 in one parameter or 5-6 urgent review by a clinician "
    "competent in acute illness; >= 7 emergency assessment by a team with critical-care competencies",
}

# Deadlines (minutes after time zero) and Vigil's conventions where a guideline gives no number.
HOUR1_MIN = 60.0  # SSC hour-1 bundle: every element started within 1 h
ANTIBIOTIC_POSSIBLE_SEPSIS_MIN = 180.0  # SSC 2021 rec 21
FLUID_WINDOW_MIN = 180.0  # SSC 2021 rec 7: first 3 h
# Vigil's reading, not a guideline's: no stop of a vasopressor is charted, so one started (or titrated)
# within 2 h before the MAP fell after fluids is taken as still running when it fell
VASOPRESSOR_RUNNING_MIN = 120
LACTATE_REMEASURE_MIN = 240.0  # SSC 2018 update: remeasure within 2-4 h
LACTATE_REMEASURE_GAP_MIN = 60.0  # Vigil: a repeat < 1 h after the first cannot show a trend
URGENT_REVIEW_MIN = 60.0  # Vigil: "urgent" (RCP gives no number)
EMERGENCY_REVIEW_MIN = 30.0  # Vigil: "emergency" (RCP gives no number)
CONTINUOUS_MONITORING_MIN = 15.0  # Vigil: a set at least every 15 min counts as continuous
FLUID_ML_PER_KG = 30.0
# Vigil: with the weight unknown the rule cannot check 30 mL/kg; it judges the volume against 30 mL/kg
# of this weight for at most half the credit, and the bolus the optimizer proposes then is sized for
# it, and says the weight must be recorded to size it
NOMINAL_WEIGHT_KG = 70.0
LATE_CREDIT = 0.5
VERY_LATE_CREDIT = 0.25  # antibiotics more than 3 h after time zero

# Candidate times (minutes after time zero) the optimizer tries for an added or moved item.
CANDIDATE_MIN: tuple[float, ...] = (0.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0)

ANTIBIOTIC_LABEL = "broad-spectrum antibiotics"
LABELS: dict[str, str] = {
    "antibiotic": ANTIBIOTIC_LABEL,
    "blood_culture": "blood cultures",
    "lactate_ordered": "lactate measurement",
    "crystalloid_ml": "crystalloid",
    "vasopressor": "vasopressor",
    "oxygen": "oxygen",
    "clinician_review": "clinician review",
    "observation_set": "observation set",
    "weight_kg": "weight",
}

# The guideline items in words (the dashboard and `vigil plan score` name them the same way).
ITEM_LABELS: dict[str, str] = {
    "antibiotics": "Antibiotics",
    "crystalloid_30ml_kg": "Crystalloid 30 mL/kg",
    "vasopressor_map_65": "Vasopressor to MAP >= 65",
    "blood_cultures_before_antibiotics": "Blood cultures before antibiotics",
    "lactate_measured": "Lactate measured",
    "lactate_remeasured": "Lactate remeasured",
    "news2_observation_frequency": "NEWS2 observation frequency",
    "news2_escalation": "NEWS2 escalation",
}
