"""The staff pages' forms (Flask-WTF: each carries the CSRF token of the session).

Forms check what a field alone can tell (required, format); what needs the
database (a prefix already used, a serial taken) is checked by
``central.registry`` and shown next to the same field.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from central.domain.hours import WEEKDAYS
from central.domain.model import PREFIX, SLUG, DeviceKind
from central.domain.policy import PolicyKind
from central.sitespec import DEVICE_ID, LANGUAGE, USER_NAME
from central.users import MIN_PASSWORD, ROLES

SLUG_RULE = "Lowercase letters, digits, _ and - (up to 32), starting with a letter or digit."
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class MultiCheckboxField(SelectMultipleField):
    """A multi-select shown as a list of checkboxes (easier than ctrl-click on a select)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class LoginForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class LogoutForm(FlaskForm):
    pass


class ServiceForm(FlaskForm):
    key = StringField("Key", validators=[DataRequired("A key is required."), Regexp(SLUG, message=SLUG_RULE)],
                      description="Used in links and by devices; cannot be changed later.")
    name = StringField("Name", validators=[DataRequired("A name is required."), Length(max=128)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    prefix = StringField("Ticket prefix", validators=[
        DataRequired("A prefix is required."),
        Regexp(PREFIX, message="1 to 3 uppercase letters, e.g. A."),
    ], description="Tickets are numbered prefix-number, e.g. A-042.")
    active = BooleanField("Active (takes tickets)", default=True)


class PointForm(FlaskForm):
    serial = IntegerField("Serial", validators=[
        InputRequired("A serial is required."),
        NumberRange(min=1, max=9999, message="A number from 1 to 9999."),
    ], description="The number clients see, e.g. 3 for Window 3.")
    name = StringField("Name", validators=[DataRequired("A name is required."), Length(max=64)])
    services = MultiCheckboxField("Services", choices=[])
    specialists = MultiCheckboxField("Specialists allowed here", choices=[], coerce=int)
    active = BooleanField("Active", default=True)


class UserForm(FlaskForm):
    name = StringField("Name", validators=[
        DataRequired("A name is required."),
        Regexp(USER_NAME, message="Letters, digits, _ . @ - (up to 64)."),
    ])
    role = SelectField("Role", choices=[(r, r.capitalize()) for r in ROLES], default="specialist")
    password = PasswordField("Password", validators=[
        Optional(), Length(min=MIN_PASSWORD, max=1024, message=f"At least {MIN_PASSWORD} characters."),
    ])
    points = MultiCheckboxField("May work at", choices=[], coerce=int)
    active = BooleanField("Active (may sign in)", default=True)


class PriorityForm(FlaskForm):
    key = StringField("Key", validators=[DataRequired("A key is required."), Regexp(SLUG, message=SLUG_RULE)])
    name = StringField("Name", validators=[DataRequired("A name is required."), Length(max=64)])
    public = BooleanField("The public page may hand it out", default=True)


class PolicyForm(FlaskForm):
    policy = SelectField("Policy", choices=[
        (PolicyKind.STRICT.value, "Strict: a higher class always goes first"),
        (PolicyKind.AGING.value, "Aging: higher first, but nobody waits past a limit"),
        (PolicyKind.RATIO.value, "Ratio: classes take turns by shares"),
    ])
    aging_after_s = IntegerField("Aging: a ticket counts as top class after (seconds)", validators=[
        InputRequired("A number of seconds is required."), NumberRange(min=1, message="More than 0 seconds."),
    ], default=600)
    ratio = StringField("Ratio: shares per class, in their order", validators=[Optional()],
                        description="e.g. 3, 1 — three calls of the first class to one of the second.")


class MoveForm(FlaskForm):
    """Move a priority class up or down the order."""

    key = HiddenField(validators=[DataRequired()])
    direction = HiddenField(validators=[DataRequired()])


class DeviceForm(FlaskForm):
    id = StringField("Id", validators=[
        DataRequired("An id is required."),
        Regexp(DEVICE_ID, message="Letters, digits, _ . - (up to 64), e.g. point-5."),
    ], description="Also the device's broker user name.")
    kind = SelectField("Kind", choices=[(k.value, k.value.capitalize()) for k in DeviceKind])
    point = SelectField("Point (for a point unit)", choices=[], validate_choice=False)
    language = StringField("Language", validators=[
        Optional(), Regexp(LANGUAGE, message='A language code, e.g. "en" or "pt-BR".'),
    ], description="Empty: the site's language.")


class HoursForm(FlaskForm):
    """One line per weekday ("09:00-13:00, 14:00-18:00"; empty = closed) and the closed dates."""

    closed = TextAreaField("Closed dates", description="One date per line, e.g. 2026-12-25.")


for _day, _label in zip(WEEKDAYS, DAY_NAMES, strict=True):
    setattr(HoursForm, _day, StringField(_label, validators=[Optional()]))


class CommandForm(FlaskForm):
    """One console button: the command id is made when the page is drawn, so a second submit is a repeat."""

    command_id = HiddenField(validators=[DataRequired(), Regexp(r"^[0-9a-f]{32}\Z")])
    service = SelectField("Transfer to", choices=[], validate_choice=False)


class PickPointForm(FlaskForm):
    point = SelectField("Point", choices=[], coerce=int)
