"""Deterministic demo data: borrowers, credit lines and a year of upstream events, bulk-loaded with COPY.

Why it looks the way it does:
- One `random.Random(seed)` drives everything in account order, so the same seed gives the same rows, and the
  first N accounts of a bigger run are the same as a run of N.
- Most borrowers are ordinary. For each signal family a few percent hit it the way real borrowers do, and a few
  more land just under or just over each threshold of ruleset v1 (`accounts/rules_default.py`), so the queue, the
  explanations and rule tuning all have something to show. `PLAN_VARIANTS` says what each planned case should
  produce; the tests hold the engine to it.
- The engine reacts to a borrower's events as they arrive, so flagged accounts were frozen over the last days, not
  all at once: the history of an account planned to be flagged ends up to 108 hours before "now" (`AS_OF_HOURS`),
  and the engine evaluates it then (`evaluate`). Cases so open over four and a half days, most within their SLA,
  some due soon, some past it, and appeals (`appeals.demo`) come after the freeze they contest.
- A million accounts must load in minutes with bounded memory: rows are formatted as COPY text chunk by chunk,
  primary keys are assigned here (rows reference each other), and a single background thread streams chunk N to
  PostgreSQL while chunk N+1 is generated, so the two cores work at the same time.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import Any

from django.conf import settings
from django.db import connection, reset_queries
from django.db.models import Field, Model
from django.utils import timezone

from accounts.engine import EvaluationResult, evaluate_lines, line_id_batches
from accounts.models import (
    Borrower,
    CreditInquiry,
    CreditLine,
    Drawdown,
    ExternalIncomeRecord,
    Installment,
    ProfileUpdate,
    Transfer,
)
from accounts.rule_queries import active_rules
from accounts.validation import national_id_check

DAY = 86_400
HOUR = 3_600
UNIX_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
DEFAULT_CHUNK_SIZE = 10_000

# COPY order respects the foreign keys: borrower -> line -> drawdown -> installment.
COPY_COLUMNS: dict[type[Model], tuple[str, ...]] = {
    Borrower: (
        "id",
        "name",
        "phone",
        "national_id",
        "city",
        "occupation",
        "employer",
        "declared_monthly_income",
        "profile_updated_at",
        "created_at",
    ),
    CreditLine: (
        "id",
        "account_no",
        "borrower",
        "limit",
        "available",
        "outstanding",
        "status",
        "frozen_since",
        "opened_at",
        "updated_at",
    ),
    CreditInquiry: ("id", "line", "upstream_id", "occurred_at", "institution"),
    Drawdown: ("id", "line", "upstream_id", "occurred_at", "amount", "term_months"),
    Installment: (
        "id",
        "line",
        "upstream_id",
        "occurred_at",
        "drawdown",
        "due_date",
        "amount",
        "paid_at",
        "paid_amount",
    ),
    Transfer: ("id", "line", "upstream_id", "occurred_at", "amount", "counterparty", "counterparty_category"),
    ExternalIncomeRecord: ("id", "line", "upstream_id", "occurred_at", "source", "employer", "monthly_income"),
    ProfileUpdate: ("id", "line", "upstream_id", "occurred_at", "employer", "monthly_income"),
}
MODELS: tuple[type[Model], ...] = tuple(COPY_COLUMNS)
EVENT_MODELS: tuple[type[Model], ...] = MODELS[2:]

CURED = "paid_31_plus_days_late"

# family -> (variant, share of open accounts, the signal severity the engine must produce or None)
PLAN_VARIANTS: dict[str, tuple[tuple[str, float, str | None], ...]] = {
    "MULTI_HEAD": (
        ("loan_shopping", 0.055, "high"),
        ("edge_4_from_3_in_29_days", 0.006, "high"),
        ("only_3_inquiries", 0.008, None),
        ("only_2_institutions", 0.008, None),
        ("fourth_just_outside_30_days", 0.006, None),
    ),
    "OVERDUE": (
        ("defaulted", 0.053, "high"),
        ("edge_30_days", 0.006, "high"),
        ("late_reminder", 0.030, "low"),
        ("edge_29_days", 0.006, "low"),
        (CURED, 0.010, None),
    ),
    "ABNORMAL_USE": (
        ("speculation", 0.054, "high"),
        ("edge_50_percent", 0.006, "high"),
        ("only_49_percent", 0.008, None),
        ("after_7_day_window", 0.006, None),
        ("before_90_day_lookback", 0.006, None),
    ),
    "PROFILE_STALE": (
        ("employer_changed", 0.027, "medium"),
        ("income_dropped", 0.025, "medium"),
        ("edge_30_percent_drop", 0.005, "medium"),
        ("edge_60_days", 0.005, "medium"),
        ("only_29_percent_drop", 0.008, None),
        ("record_59_days_old", 0.008, None),
        ("changed_and_updated", 0.030, None),
    ),
}
FAMILIES = tuple(PLAN_VARIANTS)
FIRING_ABNORMAL_USE = frozenset({"speculation", "edge_50_percent"})
# Variants that get a line frozen or cut, and so a case.
FLAGGING = frozenset(
    v for variants in PLAN_VARIANTS.values() for v, _share, severity in variants if severity in {"high", "medium"}
)
# How long before "now" the history of an account planned to be flagged ends, and the engine evaluates it (hours,
# share of those accounts). With a case SLA of 48 h and 8 h "due soon": most cases within it, a few due soon, a
# backlog past it; the oldest give appeals time to pass their own 72 h. Few distinct times: each is one engine pass.
AS_OF_HOURS: tuple[tuple[int, float], ...] = (
    (0, 0.34),
    (3, 0.16),
    (9, 0.13),
    (18, 0.11),
    (30, 0.09),
    (44, 0.07),
    (58, 0.05),
    (84, 0.03),
    (108, 0.02),
)
CLOSED_SHARE = 0.01

# --- Reference data. Weights are rough national shares; what matters is a plausible spread.

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾"
    "夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
SURNAME_WEIGHTS = [max(1.0, 8.0 - i * 0.12) for i in range(len(SURNAMES))]
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫")
GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林欢阳建国峰晨博文志海东亮成康瑞轩哲睿航"
GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀玲桂英梅琳燕丹萍红玉兰婷雪慧颖倩洁琪悦欣怡佳雯璐瑶菲嘉彤晓然思梦蕾薇楠宁月"

CITIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("上海", 8, ("310101", "310104", "310105", "310112", "310115")),
    ("北京", 8, ("110101", "110105", "110106", "110108")),
    ("深圳", 7, ("440303", "440304", "440305", "440306")),
    ("广州", 7, ("440103", "440104", "440105", "440106")),
    ("杭州", 6, ("330102", "330105", "330106", "330108", "330110")),
    ("成都", 6, ("510104", "510105", "510106", "510107")),
    ("重庆", 6, ("500103", "500105", "500106", "500112")),
    ("武汉", 5, ("420102", "420103", "420106", "420111")),
    ("西安", 4, ("610102", "610103", "610104", "610113")),
    ("南京", 4, ("320102", "320104", "320105", "320106")),
    ("苏州", 4, ("320505", "320506", "320507", "320508")),
    ("天津", 4, ("120101", "120102", "120103", "120104")),
    ("长沙", 3, ("430102", "430103", "430104", "430105")),
    ("郑州", 3, ("410102", "410103", "410104", "410105")),
    ("东莞", 3, ("441900",)),
    ("青岛", 3, ("370202", "370203", "370212")),
    ("宁波", 2, ("330203", "330205", "330212")),
    ("合肥", 2, ("340102", "340103", "340104")),
    ("佛山", 2, ("440604", "440605", "440606")),
    ("济南", 2, ("370102", "370103", "370105")),
    ("厦门", 2, ("350203", "350205", "350206")),
    ("福州", 2, ("350102", "350103", "350104")),
    ("昆明", 2, ("530102", "530103", "530111")),
    ("沈阳", 2, ("210102", "210103", "210104")),
    ("南昌", 1.5, ("360102", "360103", "360104")),
    ("石家庄", 1.5, ("130102", "130104", "130105")),
    ("南宁", 1.5, ("450102", "450103", "450105")),
    ("贵阳", 1.5, ("520102", "520103")),
    ("温州", 1.5, ("330302", "330303", "330304")),
    ("泉州", 1.5, ("350502", "350503", "350504")),
    ("无锡", 1.5, ("320205", "320206", "320211")),
    ("大连", 1.5, ("210202", "210203", "210204")),
    ("哈尔滨", 1.5, ("230102", "230103", "230104")),
    ("太原", 1, ("140105", "140106", "140107")),
    ("兰州", 1, ("620102", "620103")),
    ("乌鲁木齐", 1, ("650102", "650103")),
    ("海口", 1, ("460105", "460106")),
    ("惠州", 1, ("441302", "441303")),
    ("保定", 1, ("130602", "130606")),
    ("洛阳", 1, ("410302", "410303")),
)

# occupation, weight, monthly income range in CNY, kind of employer
OCCUPATIONS: tuple[tuple[str, float, int, int, str], ...] = (
    ("软件工程师", 6, 12_000, 35_000, "科技"),
    ("产品经理", 3, 15_000, 40_000, "科技"),
    ("教师", 6, 5_500, 12_000, "school"),
    ("护士", 4, 6_000, 12_000, "hospital"),
    ("医生", 2, 12_000, 30_000, "hospital"),
    ("销售经理", 6, 8_000, 25_000, "贸易"),
    ("会计", 5, 6_000, 15_000, "财务咨询"),
    ("行政助理", 5, 4_500, 8_000, "商务服务"),
    ("客服专员", 5, 4_500, 7_000, "信息服务"),
    ("设计师", 3, 8_000, 20_000, "设计"),
    ("外卖骑手", 6, 6_000, 11_000, "即时配送"),
    ("快递员", 5, 6_000, 10_000, "物流"),
    ("网约车司机", 4, 6_000, 12_000, "出行服务"),
    ("工厂技术员", 6, 5_000, 9_000, "制造"),
    ("电工", 3, 6_000, 10_000, "建筑工程"),
    ("厨师", 3, 6_000, 13_000, "餐饮管理"),
    ("房产经纪人", 3, 5_000, 30_000, "房地产经纪"),
    ("公务员", 3, 7_000, 15_000, "government"),
    ("个体经营者", 6, 5_000, 30_000, "self"),
    ("律师", 1, 15_000, 50_000, "law"),
    ("银行柜员", 2, 6_000, 11_000, "bank"),
    ("市场专员", 4, 6_000, 14_000, "文化传媒"),
    ("建筑工人", 4, 6_000, 12_000, "建筑工程"),
    ("导购", 4, 4_500, 8_000, "商贸"),
    ("美发师", 2, 5_000, 12_000, "美容美发"),
)
BRANDS = (
    "云栖",
    "华信",
    "金桥",
    "恒达",
    "瑞丰",
    "博远",
    "启明",
    "星辰",
    "鼎盛",
    "万通",
    "嘉禾",
    "远航",
    "天成",
    "新创",
    "立信",
    "汇通",
    "宏图",
    "卓越",
    "安泰",
    "明德",
    "盛世",
    "中联",
    "信达",
    "华泰",
    "德润",
    "长青",
    "同创",
    "凯旋",
    "锦程",
    "睿智",
    "海纳",
    "正源",
    "广利",
    "隆基",
    "百川",
    "亿达",
    "志远",
    "诚益",
    "国信",
    "晨光",
)
GOV_UNITS = (
    "税务局",
    "人力资源和社会保障局",
    "市场监督管理局",
    "交通运输局",
    "住房和城乡建设局",
    "教育局",
    "街道办事处",
)
SHOPS = ("餐馆", "便利店", "五金店", "服装店", "水果店", "烧烤店", "汽修店", "理发店")
BANKS = ("中国工商银行", "中国建设银行", "中国农业银行", "招商银行", "交通银行", "中国银行")

INSTITUTIONS = (
    "招联消费金融",
    "马上消费金融",
    "中银消费金融",
    "兴业消费金融",
    "捷信消费金融",
    "微众银行",
    "网商银行",
    "京东金融",
    "度小满金融",
    "奇富科技",
    "平安普惠",
    "宁波银行",
    "苏宁消费金融",
    "海尔消费金融",
    "小米消费金融",
    "美团金融",
    "分期乐",
    "中原消费金融",
    "招商银行信用卡中心",
    "中国工商银行",
    "中国建设银行",
    "浦发银行信用卡中心",
    "广发银行信用卡中心",
    "百信银行",
    "新网银行",
    "众安小贷",
    "携程金融",
)
CONSUMPTION = (
    "淘宝商户",
    "天猫超市",
    "京东商城",
    "拼多多商户",
    "美团外卖",
    "饿了么",
    "携程旅行",
    "滴滴出行",
    "苏宁易购",
    "国美电器",
    "盒马鲜生",
    "永辉超市",
    "大润发",
    "中国石化加油站",
    "瑞幸咖啡",
    "海底捞",
    "优衣库",
    "宜家家居",
    "小米之家",
    "华为终端",
    "万达影城",
    "中国铁路12306",
    "中国国际航空",
    "国家电网",
    "中国移动",
)
REAL_ESTATE = ("贝壳找房", "链家地产", "万科物业", "碧桂园服务", "自如租房", "我爱我家")
OTHER_PAYEES = ("个人账户", "学费缴纳", "医院缴费", "装修公司", "驾校报名")
RISKY: dict[str, tuple[str, ...]] = {
    "securities": ("华泰证券", "中信证券", "国泰君安证券", "东方财富证券", "招商证券", "广发证券", "海通证券"),
    "futures": ("永安期货", "中信期货", "南华期货", "银河期货", "国泰君安期货"),
    "crypto": ("USDT场外承兑商", "数字货币OTC商户", "虚拟币交易平台代收"),
    "gambling": ("境外博彩平台代收", "网络赌博资金账户", "体育竞猜代理"),
}
RISKY_CATEGORIES = ("securities", "futures", "crypto", "gambling")
RISKY_WEIGHTS = (0.5, 0.15, 0.15, 0.2)
INCOME_SOURCES = ("社保", "公积金", "个税")
PHONE_PREFIXES = (
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
)

# A risky transfer of a "normal" borrower after a drawdown stays well under the 50% share: realistic noise.
NOISE_SHARE = 0.06
RISKY_BACKGROUND_SHARE = 0.03
PROFILE_UPDATE_SHARE = 0.2
DRAWDOWN_COUNTS = ((0, 0.18), (1, 0.35), (2, 0.27), (3, 0.14), (4, 0.06))
INQUIRY_COUNTS = ((0, 0.35), (1, 0.30), (2, 0.20), (3, 0.10), (4, 0.05))
TRANSFER_COUNTS = ((2, 0.15), (3, 0.2), (4, 0.25), (5, 0.2), (6, 0.12), (8, 0.08))
TERMS = ((3, 0.25), (6, 0.35), (12, 0.4))


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _add_months(d: date, months: int, day: int) -> date:
    m = d.month - 1 + months
    year, month = d.year + m // 12, m % 12 + 1
    if day > 28:
        nxt = date(year + (month == 12), month % 12 + 1, 1).toordinal()
        day = min(day, nxt - date(year, month, 1).toordinal())
    return date(year, month, day)


class _Picker:
    """Weighted choice with one random() and a bisect; `random.choices` is several times slower per call."""

    def __init__(self, items: Sequence[Any], weights: Sequence[float]) -> None:
        self.items = list(items)
        cum = list(accumulate(weights))
        self.cum = [c / cum[-1] for c in cum]
        self.cum[-1] = 1.0

    def __call__(self, rng: random.Random) -> Any:
        return self.at(rng.random())

    def at(self, u: float) -> Any:
        """The item for a uniform value 0 <= u < 1."""
        return self.items[bisect(self.cum, u)]


@dataclass
class DemoStats:
    accounts: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    # Seconds before "now" -> the lines whose history ends then (lines not listed end at "now"); `evaluate` reads it.
    as_of: dict[int, list[int]] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(n for name, n in self.rows.items() if name not in {"borrower", "creditline"})


class _Chunk:
    def __init__(self) -> None:
        self.rows: dict[type[Model], list[str]] = {m: [] for m in MODELS}

    def text(self) -> dict[type[Model], str]:
        return {m: "\n".join(rows) + "\n" for m, rows in self.rows.items() if rows}


class DemoGenerator:
    """Generates accounts one after another from one seeded random stream.

    `next_ids` gives the first primary key per model; `plan`, when given, receives
    (line_id, family, variant) for every planned case, which is what tests check the engine against.
    """

    def __init__(
        self,
        *,
        seed: int,
        now: datetime,
        next_ids: dict[type[Model], int],
        plan: list[tuple[int, str, str]] | None = None,
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - demo data, reproducible by design, not security
        self.seed = seed
        offset = timezone.localtime(now).utcoffset()
        self.tz_offset = int(offset.total_seconds()) if offset else 0
        self.base_now = int(now.timestamp())
        self._as_of(self.base_now)
        self.as_of: dict[int, list[int]] = defaultdict(list)
        self.as_of_hours = _Picker(*zip(*AS_OF_HOURS, strict=True))
        self.ids = dict(next_ids)
        self.plan = plan
        self._days: dict[int, str] = {}
        self._tod = [f" {h:02d}:{m:02d}:{s:02d}+00" for h in range(24) for m in range(60) for s in range(60)]
        self.surname = _Picker(SURNAMES, SURNAME_WEIGHTS)
        self.city = _Picker(CITIES, [c[1] for c in CITIES])
        self.occupation = _Picker(OCCUPATIONS, [o[1] for o in OCCUPATIONS])
        self.risky_category = _Picker(RISKY_CATEGORIES, RISKY_WEIGHTS)
        self.drawdown_count = _Picker(*zip(*DRAWDOWN_COUNTS, strict=True))
        self.inquiry_count = _Picker(*zip(*INQUIRY_COUNTS, strict=True))
        self.transfer_count = _Picker(*zip(*TRANSFER_COUNTS, strict=True))
        self.term = _Picker(*zip(*TERMS, strict=True))
        self.variants = {
            family: _Picker(
                [*(v[0] for v in variants), None], [*(v[1] for v in variants), 1 - sum(v[1] for v in variants)]
            )
            for family, variants in PLAN_VARIANTS.items()
        }

    # --- formatting

    def ts(self, epoch: int) -> str:
        d, s = divmod(epoch, DAY)
        day = self._days.get(d)
        if day is None:
            day = self._days[d] = date.fromordinal(UNIX_EPOCH_ORDINAL + d).isoformat()
        return day + self._tod[s]

    def local_ordinal(self, epoch: int) -> int:
        return UNIX_EPOCH_ORDINAL + (epoch + self.tz_offset) // DAY

    def local_epoch(self, ordinal: int, seconds: int) -> int:
        return (ordinal - UNIX_EPOCH_ORDINAL) * DAY - self.tz_offset + seconds

    def _as_of(self, epoch: int) -> None:
        """Generate what follows as seen at `epoch`: nothing after it, "today" is its local day."""
        self.now = epoch
        self.today = self.local_ordinal(epoch)
        self.start = epoch - 365 * DAY

    def _as_of_offset(self, line_id: int, plan: dict[str, str | None]) -> int:
        """Seconds before "now" that this account's history ends: 0 unless it is planned to be flagged.

        From the line id, not the random stream, so every other row stays what it was without the offset.
        """
        if not FLAGGING.intersection(plan.values()):
            return 0
        mixed = (line_id * 2_654_435_761 + self.seed * 40_503) % 2**32 / 2**32
        return int(self.as_of_hours.at(mixed)) * HOUR

    def _next(self, model: type[Model]) -> int:
        i = self.ids[model]
        self.ids[model] = i + 1
        return i

    # --- one chunk

    def chunk(self, count: int) -> _Chunk:
        out = _Chunk()
        for _ in range(count):
            self._account(out)
        return out

    def _account(self, out: _Chunk) -> None:
        rng = self.rng
        now = self.now
        line_id = self._next(CreditLine)
        borrower_id = self._next(Borrower)

        city, _w, districts = self.city(rng)
        male = rng.random() < 0.52
        surname = rng.choice(COMPOUND_SURNAMES) if rng.random() < 0.003 else self.surname(rng)
        pool = GIVEN_MALE if male else GIVEN_FEMALE
        given = rng.choice(pool) + (rng.choice(pool) if rng.random() < 0.72 else "")
        name = surname + given
        age = int(rng.triangular(20, 56, 29))
        birth = date.fromordinal(self.today - age * 365 - rng.randrange(365))
        seq = rng.randrange(1, 500) * 2 - (1 if male else 0)
        first17 = f"{rng.choice(districts)}{birth:%Y%m%d}{seq:03d}"
        national_id = first17 + national_id_check(first17)
        phone = rng.choice(PHONE_PREFIXES) + f"{(line_id * 73_513_709 + self.seed * 7_919) % 100_000_000:08d}"
        account_no = f"JB{(line_id * 2_718_281_829 + 3_141_592_653) % 10_000_000_000:010d}"

        occupation, _w, lo, hi, kind = self.occupation(rng)
        income = int((lo + (hi - lo) * rng.betavariate(2, 3)) / 100) * 10_000
        employer = self._employer(city, kind, surname)
        raw_limit = income / 100 * rng.lognormvariate(0.45, 0.75)
        limit_yuan = min(200_000, max(2_000, raw_limit))
        limit = (int(limit_yuan / 500) * 500 if limit_yuan < 10_000 else int(limit_yuan / 1_000) * 1_000) * 100

        opened = now - rng.randrange(400 * DAY, 2_200 * DAY)
        created = opened - rng.randrange(DAY, 30 * DAY)
        closed = rng.random() < CLOSED_SHARE
        plan: dict[str, str | None] = dict.fromkeys(FAMILIES)
        if not closed:
            for family in FAMILIES:
                variant = self.variants[family](rng)
                plan[family] = variant
                if variant is not None and self.plan is not None:
                    self.plan.append((line_id, family, variant))
        shift = self._as_of_offset(line_id, plan)
        if shift:
            self._as_of(self.base_now - shift)
            self.as_of[shift].append(line_id)
            now = self.now
            opened -= shift
            created -= shift

        rate_bp = rng.randrange(45, 150)
        budget = limit * 9 // 10 // 10_000  # in units of 100 CNY; drawdowns never exceed 90% of the limit
        outstanding = 0
        last_activity = opened
        drawdowns: list[tuple[int, int, int, int | None, int]] = []  # (at, units, term, repay day, overdue days)
        busy: list[tuple[int, int]] = []  # intervals a near-miss ABNORMAL_USE case must keep other drawdowns out of

        od = plan["OVERDUE"]
        if od is not None:
            units = max(5, int(budget * rng.uniform(0.2, 0.45)))
            budget -= units
            drawdowns.append(self._overdue_drawdown(od, units))
        au = plan["ABNORMAL_USE"]
        au_draw: tuple[int, int] | None = None
        if au is not None and budget >= 5:
            units = max(5, int(budget * rng.uniform(0.3, 0.8)))
            budget -= units
            at = self._abnormal_time(au, [d[0] for d in drawdowns])
            au_draw = (at, units)
            drawdowns.append((at, units, self.term(rng), None, 0))
            if au not in FIRING_ABNORMAL_USE:
                busy.append((at - 9 * DAY, at + 10 * DAY))
        n_bg = (1 if rng.random() < 0.5 else 0) if closed else min(self.drawdown_count(rng), budget // 5)
        for _ in range(n_bg):
            units = max(5, int(budget * rng.uniform(0.15, 0.6)))
            if units > budget:
                break
            at = rng.randrange(self.start, now - (200 * DAY if closed else 3 * HOUR))
            if any(a <= at <= b for a, b in busy):
                continue
            budget -= units
            drawdowns.append((at, units, 3 if closed else self.term(rng), None, 0))

        rows = out.rows
        ts = self.ts
        transfers = rows[Transfer]
        risky_quiet = au is not None  # near-miss cases must not be pushed over by unrelated noise
        for at, units, term, repay_day, overdue_days in sorted(drawdowns):
            amount = units * 10_000
            drawdown_id = self._next(Drawdown)
            rows[Drawdown].append(
                f"{drawdown_id}\t{line_id}\tDRW{drawdown_id:012d}\t{ts(at)}\t{_money(amount)}\t{term}"
            )
            unpaid, last_paid = self._installments(
                rows[Installment], line_id, drawdown_id, at, amount, term, rate_bp, repay_day, overdue_days, od
            )
            outstanding += unpaid
            last_activity = max(last_activity, at, last_paid)
            if rng.random() < 0.75:
                self._use_transfers(transfers, line_id, at, amount)
            if not risky_quiet and rng.random() < NOISE_SHARE:
                t = at + rng.randrange(HOUR, 6 * DAY)
                if t <= now:
                    cat = rng.choice(("securities", "securities", "futures"))
                    self._transfer(transfers, line_id, t, int(amount * rng.uniform(0.05, 0.35)), cat)
        if au_draw is not None and au is not None:
            self._abnormal_transfers(transfers, line_id, au, *au_draw)

        for _ in range(self.transfer_count(rng)):
            t = rng.randrange(self.start, now)
            u = rng.random()
            if u < 0.75:
                self._transfer(transfers, line_id, t, int(rng.lognormvariate(10.3, 1.0)) + 500, "consumption")
            elif u < 0.95:
                self._transfer(transfers, line_id, t, int(rng.lognormvariate(11.3, 0.9)) + 1_000, "other")
            else:
                self._transfer(transfers, line_id, t, rng.randrange(1_500, 6_000) * 100, "real_estate")
        if not risky_quiet and rng.random() < RISKY_BACKGROUND_SHARE:
            t = rng.randrange(self.start, now)
            self._transfer(transfers, line_id, t, rng.randrange(200, 3_000) * 100, self.risky_category(rng))

        self._inquiries(rows[CreditInquiry], line_id, plan["MULTI_HEAD"])
        employer, income, profile_at = self._income_and_profile(
            rows, line_id, plan["PROFILE_STALE"], employer, income, city, kind, surname, created
        )

        if closed:
            status, available, outstanding = "closed", 0, 0
            updated = max(last_activity, now - rng.randrange(30 * DAY, 180 * DAY))
        else:
            status, available = "active", limit - outstanding
            updated = last_activity
        rows[Borrower].append(
            f"{borrower_id}\t{name}\t{phone}\t{national_id}\t{city}\t{occupation}\t{employer}\t{_money(income)}"
            f"\t{ts(profile_at)}\t{ts(created)}"
        )
        rows[CreditLine].append(
            f"{line_id}\t{account_no}\t{borrower_id}\t{_money(limit)}\t{_money(available)}\t{_money(outstanding)}"
            f"\t{status}\t\\N\t{ts(opened)}\t{ts(updated)}"
        )
        if shift:
            self._as_of(self.base_now)

    # --- people

    def _employer(self, city: str, kind: str, surname: str) -> str:
        rng = self.rng
        if kind == "school":
            return (
                f"{city}市第{rng.randrange(1, 40)}中学"
                if rng.random() < 0.6
                else f"{city}市{rng.choice(BRANDS)}实验小学"
            )
        if kind == "hospital":
            return (
                f"{city}市第{rng.randrange(1, 12)}人民医院" if rng.random() < 0.6 else f"{city}{rng.choice(BRANDS)}医院"
            )
        if kind == "government":
            return f"{city}市{rng.choice(GOV_UNITS)}"
        if kind == "self":
            return f"{city}{surname}记{rng.choice(SHOPS)}（个体工商户）"
        if kind == "law":
            return f"{rng.choice(BRANDS)}律师事务所"
        if kind == "bank":
            return f"{rng.choice(BANKS)}{city}分行"
        return f"{city}{rng.choice(BRANDS)}{kind}有限公司"

    def _other_employer(self, city: str, kind: str, surname: str, current: str) -> str:
        for _ in range(10):
            employer = self._employer(city, kind, surname)
            if employer != current:
                return employer
        return f"{city}{self.rng.choice(BRANDS)}{self.rng.choice(BRANDS)}有限公司"

    # --- drawdowns and repayments

    def _overdue_drawdown(self, variant: str, units: int) -> tuple[int, int, int, int | None, int]:
        """A drawdown whose k-th installment falls due exactly `days` before today (local calendar)."""
        rng = self.rng
        if variant == "defaulted":
            days = rng.randrange(31, 151)
        elif variant == "edge_30_days":
            days = 30
        elif variant == "late_reminder":
            days = rng.randrange(1, 29)
        elif variant == "edge_29_days":
            days = 29
        else:
            days = rng.randrange(45, 150)
        due = date.fromordinal(self.today - days)
        term = rng.choice((6, 12, 12))
        k = rng.randrange(1, min(term, max(1, (330 - days) // 31)) + 1)
        drawn_on = _add_months(due, -k, due.day)
        at = self.local_epoch(drawn_on.toordinal(), rng.randrange(8 * HOUR, 23 * HOUR))
        return at, units, term, due.day, days

    def _installments(
        self,
        rows: list[str],
        line_id: int,
        drawdown_id: int,
        at: int,
        amount: int,
        term: int,
        rate_bp: int,
        repay_day: int | None,
        overdue_days: int,
        od_variant: str | None,
    ) -> tuple[int, int]:
        """Write the repayment schedule; return (unpaid principal, last payment time)."""
        rng = self.rng
        now = self.now
        today = self.today
        drawn_on = date.fromordinal(self.local_ordinal(at))
        day = repay_day or min(drawn_on.day, 28)
        base, rest = divmod(amount, term)
        remaining = amount
        unpaid_principal = 0
        last_paid = at
        target = today - overdue_days if overdue_days else None
        ts = self.ts
        for i in range(1, term + 1):
            due = _add_months(drawn_on, i, day).toordinal()
            principal = base + (rest if i == term else 0)
            total = principal + remaining * rate_bp // 10_000
            remaining -= principal
            paid_at: int | None
            if target is not None and target <= due <= today and od_variant != CURED:
                paid_at = None
            elif target is not None and due == target:
                paid_at = self.local_epoch(due + rng.randrange(31, overdue_days), rng.randrange(8 * HOUR, 22 * HOUR))
            else:
                u = rng.random()
                if u < 0.8:
                    paid_on = due - rng.randrange(0, 4)
                elif u < 0.95:
                    paid_on = due - rng.randrange(4, 21)
                else:
                    paid_on = due + rng.randrange(1, 11)
                paid_at = self.local_epoch(paid_on, rng.randrange(7 * HOUR, 23 * HOUR))
                if paid_at > now:
                    paid_at = None
            occurred = ts(at)
            installment_id = self._next(Installment)
            if paid_at is None:
                unpaid_principal += principal
                rows.append(
                    f"{installment_id}\t{line_id}\tINS{installment_id:012d}\t{occurred}\t{drawdown_id}"
                    f"\t{date.fromordinal(due).isoformat()}\t{_money(total)}\t\\N\t0.00"
                )
            else:
                last_paid = max(last_paid, paid_at)
                money = _money(total)
                rows.append(
                    f"{installment_id}\t{line_id}\tINS{installment_id:012d}\t{occurred}\t{drawdown_id}"
                    f"\t{date.fromordinal(due).isoformat()}\t{money}\t{ts(paid_at)}\t{money}"
                )
        return unpaid_principal, last_paid

    # --- transfers

    def _transfer(self, rows: list[str], line_id: int, at: int, cents: int, category: str) -> None:
        rng = self.rng
        if category == "consumption":
            payee = rng.choice(CONSUMPTION)
        elif category == "real_estate":
            payee = rng.choice(REAL_ESTATE)
        elif category == "other":
            payee = rng.choice(OTHER_PAYEES)
            if payee == "个人账户":
                payee = f"个人账户 {self.surname(rng)}**"
        else:
            payee = rng.choice(RISKY[category])
        transfer_id = self._next(Transfer)
        rows.append(
            f"{transfer_id}\t{line_id}\tTRF{transfer_id:012d}\t{self.ts(at)}\t{_money(cents)}\t{payee}\t{category}"
        )

    def _use_transfers(self, rows: list[str], line_id: int, at: int, amount: int) -> None:
        """What ordinary borrowers do with a drawdown: shopping, rent, paying people."""
        rng = self.rng
        n = rng.randrange(1, 4)
        total = int(amount * rng.uniform(0.3, 1.0))
        for part in self._split(total, n):
            t = at + rng.randrange(10 * 60, int(6.5 * DAY))
            if t > self.now:
                continue
            u = rng.random()
            self._transfer(rows, line_id, t, part, "consumption" if u < 0.8 else "real_estate" if u < 0.88 else "other")

    def _split(self, total: int, n: int) -> list[int]:
        """`total` cents in `n` positive parts that add up exactly."""
        if n <= 1 or total < n * 100:
            return [total]
        weights = [self.rng.uniform(0.5, 1.5) for _ in range(n)]
        scale = sum(weights)
        parts = [int(total * w / scale) for w in weights[:-1]]
        parts.append(total - sum(parts))
        return parts

    def _abnormal_time(self, variant: str, avoid: list[int]) -> int:
        rng = self.rng
        for _ in range(20):
            if variant == "speculation":
                at = self.now - rng.randrange(2 * HOUR, 88 * DAY)
            elif variant == "before_90_day_lookback":
                at = self.now - rng.randrange(91 * DAY, 100 * DAY)
            else:
                at = self.now - rng.randrange(10 * DAY, 80 * DAY)
            if all(abs(at - a) > 10 * DAY for a in avoid):
                return at
        return at

    def _abnormal_transfers(self, rows: list[str], line_id: int, variant: str, at: int, units: int) -> None:
        """Money drawn, then moved to brokers, futures, crypto or gambling within days."""
        rng = self.rng
        amount = units * 10_000
        now = self.now
        if variant == "speculation":
            share = rng.uniform(0.55, 1.0)
            end = min(now, at + 7 * DAY - HOUR)
            parts = self._split(int(amount * share), rng.randrange(1, 5))
            times = sorted(rng.randrange(at + 60, max(at + 120, end)) for _ in parts)
        elif variant in {"edge_50_percent", "only_49_percent"}:
            total = amount // 2 if variant == "edge_50_percent" else amount * 49 // 100
            parts = self._split(total, 2)
            times = [at + rng.randrange(HOUR, 3 * DAY), at + 7 * DAY - rng.randrange(60, 3 * HOUR)]
        elif variant == "after_7_day_window":
            parts = [amount * 20 // 100, amount * rng.randrange(40, 70) // 100]
            times = [at + rng.randrange(HOUR, 2 * DAY), at + 7 * DAY + rng.randrange(2 * HOUR, 30 * HOUR)]
        else:
            parts = self._split(amount * rng.randrange(60, 95) // 100, rng.randrange(1, 4))
            times = sorted(at + rng.randrange(HOUR, 3 * DAY) for _ in parts)
        for t, cents in zip(times, parts, strict=True):
            self._transfer(rows, line_id, t, cents, self.risky_category(rng))

    # --- inquiries

    def _inquiries(self, rows: list[str], line_id: int, variant: str | None) -> None:
        rng = self.rng
        now = self.now
        ts = self.ts
        times: list[tuple[int, str]] = []
        background_end = now if variant is None else now - 35 * DAY
        for _ in range(self.inquiry_count(rng)):
            times.append((rng.randrange(self.start, background_end), rng.choice(INSTITUTIONS)))
        if variant is not None:
            recent: list[int]
            if variant == "loan_shopping":
                n = rng.randrange(4, 9)
                k = rng.randrange(3, min(n, 6) + 1)
                span = rng.randrange(3 * DAY, 28 * DAY)
                recent = [now - rng.randrange(60, span) for _ in range(n)]
            elif variant == "edge_4_from_3_in_29_days":
                n, k = 4, 3
                recent = [now - 29 * DAY - rng.randrange(HOUR, 20 * HOUR)] + [
                    now - rng.randrange(HOUR, 28 * DAY) for _ in range(3)
                ]
            elif variant == "only_3_inquiries":
                n, k = 3, 3
                recent = [now - rng.randrange(HOUR, 28 * DAY) for _ in range(3)]
            elif variant == "only_2_institutions":
                n, k = rng.randrange(4, 7), 2
                recent = [now - rng.randrange(HOUR, 28 * DAY) for _ in range(n)]
            else:
                n, k = 4, 3
                recent = [now - 30 * DAY - rng.randrange(HOUR, 20 * HOUR)] + [
                    now - rng.randrange(HOUR, 28 * DAY) for _ in range(3)
                ]
            chosen = rng.sample(INSTITUTIONS, k)
            names = chosen + [rng.choice(chosen) for _ in range(n - k)]
            rng.shuffle(names)
            if variant == "fourth_just_outside_30_days":
                # The three inside the window come from only two lenders, so nothing but the window decides.
                names = [chosen[2], chosen[0], chosen[1], chosen[rng.randrange(2)]]
            times.extend(zip(recent, names, strict=True))
        for at, institution in sorted(times):
            inquiry_id = self._next(CreditInquiry)
            rows.append(f"{inquiry_id}\t{line_id}\tINQ{inquiry_id:012d}\t{ts(at)}\t{institution}")

    # --- external income records and profile updates

    def _income_and_profile(
        self,
        rows: dict[type[Model], list[str]],
        line_id: int,
        variant: str | None,
        employer: str,
        income: int,
        city: str,
        kind: str,
        surname: str,
        created: int,
    ) -> tuple[str, int, int]:
        """Write the external records and profile updates; return the borrower's (employer, income, updated at)."""
        rng = self.rng
        now = self.now
        n = rng.randrange(2, 6)
        step = 365 * DAY // n
        times = [self.start + j * step + rng.randrange(step // 10, step - step // 10) for j in range(n)]
        change: int | None = None
        new_employer, new_income = employer, income
        if variant is not None:
            if variant == "employer_changed":
                change = now - rng.randrange(61 * DAY, 300 * DAY)
                new_employer = self._other_employer(city, kind, surname, employer)
                new_income = int(income * rng.uniform(0.8, 1.3)) // 100 * 100
            elif variant == "income_dropped":
                change = now - rng.randrange(61 * DAY, 300 * DAY)
                new_income = int(income * rng.uniform(0.3, 0.62)) // 100 * 100
            elif variant == "edge_30_percent_drop":
                change = now - rng.randrange(70 * DAY, 200 * DAY)
                new_income = income * 70 // 100
            elif variant == "only_29_percent_drop":
                change = now - rng.randrange(70 * DAY, 250 * DAY)
                new_income = income * 71 // 100
            elif variant == "edge_60_days":
                change = now - 60 * DAY - rng.randrange(HOUR, 20 * HOUR)
                new_employer = self._other_employer(city, kind, surname, employer)
            elif variant == "record_59_days_old":
                change = now - 59 * DAY - rng.randrange(0, 20 * HOUR)
                new_employer = self._other_employer(city, kind, surname, employer)
            else:
                change = now - rng.randrange(90 * DAY, 300 * DAY)
                new_employer = self._other_employer(city, kind, surname, employer)
                new_income = int(income * rng.uniform(0.85, 1.4)) // 100 * 100
            times = sorted([*(t for t in times if abs(t - change) > 5 * DAY), change])
        source = rng.choice(INCOME_SOURCES)
        exact = variant in {"edge_30_percent_drop", "only_29_percent_drop"}
        for t in times:
            changed = change is not None and t >= change
            if changed and exact:
                rec_employer, rec_income = new_employer, new_income
            elif changed:
                # A dropped income stays under 65% of the declared one whatever the month's jitter.
                jitter = rng.uniform(0.95, 1.05) if variant == "income_dropped" else rng.uniform(0.88, 1.15)
                rec_employer, rec_income = new_employer, int(new_income * jitter)
            else:
                rec_employer, rec_income = employer, int(income * rng.uniform(0.88, 1.15))
            record_id = self._next(ExternalIncomeRecord)
            rows[ExternalIncomeRecord].append(
                f"{record_id}\t{line_id}\tINC{record_id:012d}\t{self.ts(t)}\t{source}\t{rec_employer}\t{_money(rec_income)}"
            )

        updates: list[int] = []
        if variant == "changed_and_updated" and change is not None:
            updates.append(min(now - DAY, change + rng.randrange(3 * DAY, 45 * DAY)))
            employer, income = new_employer, new_income
        elif rng.random() < PROFILE_UPDATE_SHARE:
            latest = now if change is None else change - DAY
            if latest > self.start:
                updates.append(rng.randrange(self.start, latest))
        for t in updates:
            update_id = self._next(ProfileUpdate)
            rows[ProfileUpdate].append(
                f"{update_id}\t{line_id}\tPRF{update_id:012d}\t{self.ts(t)}\t{employer}\t{_money(income)}"
            )
        return employer, income, max([created, *updates])


# --- loading


def db_column(model: type[Model], name: str) -> str:
    """The database column of a model's field (the demo's raw SQL names its columns from the models)."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or not field.column:
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return field.column


def _copy_sql(model: type[Model], freeze: bool) -> str:
    qn = connection.ops.quote_name
    columns = ", ".join(qn(db_column(model, name)) for name in COPY_COLUMNS[model])
    return f"COPY {qn(model._meta.db_table)} ({columns}) FROM STDIN" + (" WITH (FREEZE)" if freeze else "")


def _copy_chunk(raw: Any, sql: dict[type[Model], str], text: dict[type[Model], str]) -> None:
    with raw.cursor() as cur:
        for model in MODELS:
            if model in text:
                with cur.copy(sql[model]) as copy:
                    copy.write(text[model])


def next_ids() -> dict[type[Model], int]:
    """The first free primary key per table (1 after a reset)."""
    qn = connection.ops.quote_name
    with connection.cursor() as cur:
        cur.execute(
            " UNION ALL ".join(
                f"SELECT {i}, COALESCE(max(id), 0) + 1 FROM {qn(m._meta.db_table)}"  # noqa: S608 - table names from the models
                for i, m in enumerate(MODELS)
            )
        )
        found = dict(cur.fetchall())
    return {m: found[i] for i, m in enumerate(MODELS)}


def sync_sequences() -> None:
    """Explicit ids bypass the identity sequences; move them past the loaded rows."""
    qn = connection.ops.quote_name
    with connection.cursor() as cur:
        for m in MODELS:
            table = m._meta.db_table
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), COALESCE(max(id), 1), max(id) IS NOT NULL) "  # noqa: S608 - table names from the models, values bound
                f"FROM {qn(table)}",
                [table],
            )


def analyze() -> None:
    qn = connection.ops.quote_name
    with connection.cursor() as cur:
        cur.execute("ANALYZE " + ", ".join(qn(m._meta.db_table) for m in MODELS))


def load(
    *,
    accounts: int,
    seed: int,
    now: datetime,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    freeze: bool = False,
    plan: list[tuple[int, str, str]] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> DemoStats:
    """Generate and COPY `accounts` accounts into the current transaction.

    `freeze` writes the rows already frozen (COPY FREEZE), allowed only when the tables were truncated in this
    same transaction; it spares the first reader from setting hint bits on every page. The caller then syncs the
    sequences and analyzes (`sync_sequences`, `analyze`), as `seed_demo` does.
    """
    connection.ensure_connection()
    raw = connection.connection
    gen = DemoGenerator(seed=seed, now=now, next_ids=next_ids(), plan=plan)
    sql = {m: _copy_sql(m, freeze) for m in MODELS}
    stats = DemoStats(accounts=accounts, rows={m._meta.model_name or "": 0 for m in MODELS})
    done = 0
    pending: Future[None] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-copy") as pool:
        while done < accounts:
            n = min(chunk_size, accounts - done)
            chunk = gen.chunk(n)
            for m, rows in chunk.rows.items():
                stats.rows[m._meta.model_name or ""] += len(rows)
            text = chunk.text()
            del chunk
            if pending is not None:
                pending.result()
                if on_progress:
                    on_progress(done)
            pending = pool.submit(_copy_chunk, raw, sql, text)
            del text
            done += n
        if pending is not None:
            pending.result()
    if on_progress:
        on_progress(done)
    stats.as_of = dict(gen.as_of)
    return stats


def evaluate(*, now: datetime, as_of: dict[int, list[int]], batch_size: int | None = None) -> EvaluationResult:
    """The engine over the loaded lines, each at the time its history ends (`DemoStats.as_of`), oldest first.

    As if it had reacted to each account's last events: the freezes, cases, audit events and messages of an account
    come when its data says, and the audit log is written in time order. The lines not in `as_of` are evaluated at
    `now` batch by batch, as `accounts.engine.evaluate_all` does.
    """
    batch_size = batch_size or settings.ENGINE_BATCH_SIZE
    rules = active_rules()
    total = EvaluationResult()
    for offset in sorted(as_of, reverse=True):
        ids = as_of[offset]
        at = now - timedelta(seconds=offset)
        for i in range(0, len(ids), batch_size):
            total.add(evaluate_lines(ids[i : i + batch_size], now=at, rules=rules))
            reset_queries()
    earlier = {line_id for ids in as_of.values() for line_id in ids}
    for ids in line_id_batches(batch_size):
        rest = [line_id for line_id in ids if line_id not in earlier]
        if rest:
            total.add(evaluate_lines(rest, now=now, rules=rules))
            reset_queries()
    return total
