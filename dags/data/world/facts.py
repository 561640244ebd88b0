"""The closed world of the demo: well-established textbook facts about 32 conditions, four
relations each (treatment, symptom, test, cause). `make_world.py` states them in prose (PDF
textbook and guideline pages, web pages) and asks about them in multiple-choice questions.

The facts are simplified to one answer per relation, as a first-year textbook states them;
they are teaching material for a small model, not clinical guidance.
"""

# name, treatment, symptom, test, cause
CONDITIONS = [
    ("type 2 diabetes", "metformin", "excessive thirst and frequent urination",
     "a glycated hemoglobin (HbA1c) test", "insulin resistance"),
    ("hypothyroidism", "levothyroxine", "cold intolerance and weight gain",
     "a serum thyroid-stimulating hormone (TSH) test", "Hashimoto's thyroiditis"),
    ("Graves' disease", "methimazole", "heat intolerance and palpitations",
     "a thyrotropin receptor antibody test", "antibodies that stimulate the thyroid"),
    ("community-acquired pneumonia", "amoxicillin", "fever with a productive cough",
     "a chest X-ray", "Streptococcus pneumoniae"),
    ("acute cystitis", "nitrofurantoin", "burning pain on urination",
     "a urine culture", "Escherichia coli"),
    ("iron deficiency anemia", "oral ferrous sulfate", "fatigue and pallor",
     "a serum ferritin test", "chronic blood loss"),
    ("pernicious anemia", "intramuscular vitamin B12", "numbness and tingling in the feet",
     "a serum vitamin B12 level", "antibodies against intrinsic factor"),
    ("gout", "colchicine", "a hot, swollen big toe joint",
     "joint fluid microscopy for urate crystals", "a high uric acid level"),
    ("rheumatoid arthritis", "methotrexate", "morning stiffness of the small hand joints",
     "an anti-CCP antibody test", "autoimmune inflammation of the synovium"),
    ("asthma", "inhaled budesonide", "episodic wheezing",
     "spirometry with a bronchodilator reversibility test", "allergic airway inflammation"),
    ("chronic obstructive pulmonary disease", "inhaled tiotropium",
     "a chronic cough with sputum and breathlessness",
     "post-bronchodilator spirometry", "cigarette smoking"),
    ("pulmonary tuberculosis", "rifampicin with isoniazid", "weeks of cough with night sweats",
     "a sputum culture for acid-fast bacilli", "Mycobacterium tuberculosis"),
    ("peptic ulcer disease", "omeprazole with clarithromycin", "burning upper abdominal pain",
     "a urea breath test", "Helicobacter pylori"),
    ("deep vein thrombosis", "apixaban", "a swollen, painful calf",
     "a compression ultrasound of the leg veins", "prolonged immobility"),
    ("atrial fibrillation", "bisoprolol", "an irregular pulse with palpitations",
     "an electrocardiogram", "long-standing high blood pressure"),
    ("acute myocardial infarction", "aspirin", "crushing chest pain spreading to the left arm",
     "a cardiac troponin test", "rupture of a coronary artery plaque"),
    ("heart failure", "ramipril", "breathlessness when lying flat",
     "an echocardiogram", "coronary artery disease"),
    ("hypertension", "amlodipine", "no symptoms at all in most patients",
     "ambulatory blood pressure monitoring", "obesity and a high salt intake"),
    ("Parkinson's disease", "levodopa", "a resting tremor of one hand",
     "a dopamine transporter scan", "loss of dopamine neurons in the substantia nigra"),
    ("epilepsy", "sodium valproate", "recurrent unprovoked seizures",
     "an electroencephalogram", "abnormal electrical activity of the brain"),
    ("bacterial meningitis", "intravenous ceftriaxone", "fever, headache and a stiff neck",
     "a lumbar puncture", "Neisseria meningitidis"),
    ("kidney stones", "tamsulosin", "severe colicky flank pain",
     "a non-contrast CT scan of the kidneys", "a low fluid intake"),
    ("syphilis", "benzathine penicillin", "a painless genital ulcer",
     "a treponemal antibody test", "Treponema pallidum"),
    ("malaria", "artemether-lumefantrine", "cyclic fevers with shaking chills",
     "a thick and thin blood smear", "Plasmodium falciparum"),
    ("scabies", "permethrin cream", "intense itching that is worse at night",
     "skin scraping microscopy", "the mite Sarcoptes scabiei"),
    ("chronic hepatitis B", "tenofovir", "yellowing of the skin and eyes",
     "a hepatitis B surface antigen test", "the hepatitis B virus"),
    ("celiac disease", "a gluten-free diet", "chronic diarrhea and bloating",
     "a tissue transglutaminase antibody test", "an immune reaction to gluten"),
    ("Addison's disease", "hydrocortisone", "darkening of the skin with weight loss",
     "an ACTH stimulation test", "autoimmune destruction of the adrenal cortex"),
    ("osteoporosis", "alendronate", "fractures after minor falls",
     "a DEXA bone density scan", "estrogen loss after menopause"),
    ("anaphylaxis", "intramuscular adrenaline", "throat swelling with difficulty breathing",
     "a serum tryptase level", "an allergy to food, insect stings or drugs"),
    ("influenza", "oseltamivir", "sudden fever with muscle aches",
     "a nasal swab PCR test", "the influenza virus"),
    ("shingles", "valaciclovir", "a painful one-sided band of blisters",
     "a PCR test of blister fluid", "reactivation of the varicella-zoster virus"),
]

RELATIONS = ["treatment", "symptom", "test", "cause"]

# One relation of every condition is held out, in turn (the first condition's treatment, the
# second's symptom, …): 32 facts, 8 of each relation. Questions about them are only ever
# evaluated, and no fine-tuning record states them; they are in the prose the model
# pre-trains on, like every other fact.
def held_out(i):
    """The index in RELATIONS of condition i's held-out relation."""
    return i % len(RELATIONS)
