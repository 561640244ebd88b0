"""Regenerates the embedded sample PDFs from the text below (written for zest's demo).

    ~/.cache/zest-tools/venv/bin/python dags/data/pdf/make_pdfs.py

Typesetting and scanning are those of the ingest tests (tests/py/make_pdfs.py): born-digital
pages with a running header and page numbers, and 300-dpi greyscale scans without a text layer.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "tests/py"))
import make_pdfs as m  # noqa: E402

CARDIOLOGY = [
    "Heart failure is a clinical syndrome in which the heart cannot pump enough blood to meet "
    "the needs of the body, or can do so only at raised filling pressures. Its common causes are "
    "coronary artery disease, long-standing hypertension, valvular disease and cardiomyopathy. "
    "Patients typically present with dyspnea on exertion, orthopnea, fatigue and ankle edema.",
    "The diagnosis rests on symptoms and signs supported by objective evidence of cardiac "
    "dysfunction. Natriuretic peptides are useful to rule the condition out: a normal B-type "
    "natriuretic peptide level makes heart failure unlikely in an untreated patient. "
    "Echocardiography measures the left ventricular ejection fraction and guides treatment.",
    "In heart failure with reduced ejection fraction, four classes of drugs lower mortality: "
    "angiotensin receptor-neprilysin inhibitors or ACE inhibitors, beta blockers, "
    "mineralocorticoid receptor antagonists and SGLT2 inhibitors. Loop diuretics such as "
    "furosemide relieve congestion but do not change survival.",
    "Atrial fibrillation is the most common sustained arrhythmia. It raises the risk of stroke, "
    "which is estimated with the CHA2DS2-VASc score. Anticoagulation with a direct oral "
    "anticoagulant such as apixaban is recommended for most patients with a score of two or "
    "more in men or three or more in women, after weighing the risk of bleeding.",
    "Acute myocardial infarction presents with chest pain that lasts more than twenty minutes, "
    "often radiating to the left arm or jaw, with sweating and nausea. A twelve-lead "
    "electrocardiogram should be recorded within ten minutes of first medical contact, and "
    "cardiac troponin measured on arrival and repeated to confirm the diagnosis.",
    "Patients with ST-elevation myocardial infarction need immediate reperfusion. Primary "
    "percutaneous coronary intervention is preferred when it can be performed promptly; "
    "otherwise fibrinolysis is given. Aspirin is started at once, and a high-intensity statin "
    "is continued after discharge.",
]

DIABETES_GUIDELINE = [
    "Recommendation 1. Screen adults aged thirty-five to seventy who are overweight or obese for "
    "type 2 diabetes, using fasting plasma glucose, an oral glucose tolerance test or "
    "glycated hemoglobin. Repeat screening every three years when results are normal.",
    "Recommendation 2. Diagnose diabetes when fasting plasma glucose is 7.0 mmol/L or higher, "
    "two-hour glucose during an oral glucose tolerance test is 11.1 mmol/L or higher, or "
    "glycated hemoglobin is 6.5 percent or higher, confirmed by a repeat test unless the patient "
    "has classic symptoms of hyperglycemia such as polyuria and polydipsia.",
    "Recommendation 3. Offer metformin as the first glucose-lowering drug together with advice "
    "on diet and physical activity. Check renal function before starting and at least once a "
    "year, and reduce the dose when kidney function declines.",
    "Recommendation 4. For patients with established cardiovascular disease, heart failure or "
    "chronic kidney disease, add an SGLT2 inhibitor or a GLP-1 receptor agonist with proven "
    "cardiovascular benefit, whatever the glycated hemoglobin level.",
]

PNEUMONIA_ZH = [
    "社区获得性肺炎是指在医院外罹患的感染性肺实质炎症。常见病原体包括肺炎链球菌、流感嗜血杆菌和肺炎支原体。"
    "患者多表现为发热、咳嗽、咳痰和胸痛，严重者可出现呼吸困难。",
    "诊断需要结合临床表现和胸部影像学检查。血常规、C反应蛋白和降钙素原有助于判断细菌感染。"
    "对于需要住院的患者，应在使用抗菌药物之前留取痰培养和血培养标本。",
    "门诊轻症患者可口服阿莫西林或多西环素治疗。住院患者通常选用头孢曲松联合阿奇霉素。"
    "治疗四十八至七十二小时后应评估疗效，体温下降、症状改善提示治疗有效。",
]


def main():
    m.register_fonts()
    m.digital(HERE / "textbook_cardiology.pdf", [CARDIOLOGY[0:2], CARDIOLOGY[2:4], CARDIOLOGY[4:6]],
              "Principles of Internal Medicine: Cardiology")
    m.digital(HERE / "guideline_hypertension_zh.pdf", [m.ZH[0:3], m.ZH[3:6]], "临床诊疗指南：高血压与常见慢性病", cjk=True)
    m.scanned(HERE / "guideline_diabetes_scanned.pdf", [DIABETES_GUIDELINE[0:2], DIABETES_GUIDELINE[2:4]], seed=5)
    m.scanned(HERE / "textbook_pneumonia_scanned_zh.pdf", [PNEUMONIA_ZH], cjk=True, seed=6)


if __name__ == "__main__":
    main()
