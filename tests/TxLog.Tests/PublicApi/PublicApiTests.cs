using System.Reflection;
using System.Text;

namespace TxLog.Tests.PublicApi;

/// <summary>
/// API approval: the public surface of each shipped assembly is listed in a checked-in file
/// (tests/TxLog.Tests/PublicApi/{assembly}.api.txt). A change to the surface fails this test until the
/// file is updated — run the tests with TXLOG_ACCEPT_API=1 to rewrite it, then review the diff.
/// </summary>
public sealed class PublicApiTests
{
    private static readonly Assembly[] Shipped = [typeof(LogStore).Assembly, typeof(global::TxLog.Hosting.TxLogOptions).Assembly];

    [TestCaseSource(nameof(Assemblies))]
    public void The_public_api_matches_the_approved_listing(string assemblyName)
    {
        Assembly assembly = Shipped.Single(a => a.GetName().Name == assemblyName);
        string actual = PublicApiListing.Describe(assembly);
        string approvedPath = Path.Combine(SourceDirectory(), assemblyName + ".api.txt");
        if (Environment.GetEnvironmentVariable("TXLOG_ACCEPT_API") == "1")
        {
            File.WriteAllText(approvedPath, actual);
        }

        string approved = File.Exists(approvedPath) ? File.ReadAllText(approvedPath).ReplaceLineEndings("\n") : "";
        if (approved != actual)
        {
            var approvedLines = new HashSet<string>(approved.Split('\n'));
            var actualLines = new HashSet<string>(actual.Split('\n'));
            var report = new StringBuilder();
            report.AppendLine($"The public API of {assemblyName} changed. If that is deliberate, run the tests with TXLOG_ACCEPT_API=1 and commit {approvedPath}.");
            foreach (string line in actualLines.Where(l => !approvedLines.Contains(l)).Take(40))
            {
                report.AppendLine("+ " + line);
            }

            foreach (string line in approvedLines.Where(l => !actualLines.Contains(l)).Take(40))
            {
                report.AppendLine("- " + line);
            }

            Assert.Fail(report.ToString());
        }
    }

    [Test]
    public void The_listing_changes_when_a_public_member_changes()
    {
        // The listing must see what makes an API change: a renamed parameter, a new overload, a setter.
        string before = PublicApiListing.DescribeType(typeof(Sample1));
        string after = PublicApiListing.DescribeType(typeof(Sample2));
        Assert.That(before.Replace("Sample1", "X", StringComparison.Ordinal), Is.Not.EqualTo(after.Replace("Sample2", "X", StringComparison.Ordinal)));
        Assert.That(before, Does.Contain("Run(System.Int32 count)"));
        Assert.That(after, Does.Contain("Run(System.Int32 times)"));
        Assert.That(after, Does.Contain("Name { get; set; }"));
        Assert.That(before, Does.Not.Contain("Hidden"), "internal members are not listed");
        Assert.That(before, Does.Contain("System.String Name"));
        Assert.That(after, Does.Contain("System.String? Note"), "nullable annotations are part of the API");
    }

    public static IEnumerable<string> Assemblies() => Shipped.Select(a => a.GetName().Name!);

    /// <summary>
    /// The checked-in listings live next to this file. The path is found by walking up from the test
    /// binaries to the solution, not through [CallerFilePath]: a CI build (ContinuousIntegrationBuild)
    /// maps source paths to "/_/", which points nowhere at run time.
    /// </summary>
    private static string SourceDirectory()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "TxLog.sln")))
            {
                return Path.Combine(dir.FullName, "tests", "TxLog.Tests", "PublicApi");
            }
        }

        throw new InvalidOperationException("TxLog.sln not found above " + AppContext.BaseDirectory);
    }

#pragma warning disable CA1822, IDE0060 // shapes for the listing test
    public sealed class Sample1
    {
        public string Name { get; } = "";

        public void Run(int count)
        {
        }

        internal void Hidden()
        {
        }
    }

    public sealed class Sample2
    {
        public string Name { get; set; } = "";

        public string? Note { get; set; }

        public void Run(int times)
        {
        }
    }
#pragma warning restore CA1822, IDE0060
}

/// <summary>A stable, sorted text listing of an assembly's public and protected surface.</summary>
internal static class PublicApiListing
{
    private static readonly NullabilityInfoContext Nullability = new();

    public static string Describe(Assembly assembly)
    {
        var types = assembly.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal);
        var text = new StringBuilder();
        foreach (Type type in types)
        {
            text.Append(DescribeType(type));
        }

        return text.ToString();
    }

    public static string DescribeType(Type type)
    {
        var text = new StringBuilder();
        text.Append(TypeHeader(type)).Append('\n');
        if (type.IsEnum)
        {
            foreach (string name in Enum.GetNames(type))
            {
                object value = Convert.ChangeType(Enum.Parse(type, name), Enum.GetUnderlyingType(type), System.Globalization.CultureInfo.InvariantCulture);
                text.Append("  ").Append(name).Append(" = ").Append(value).Append('\n');
            }

            return text.ToString();
        }

        const BindingFlags flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var members = new List<string>();
        foreach (MemberInfo member in type.GetMembers(flags))
        {
            string? line = member switch
            {
                ConstructorInfo c when Visible(c) => $"{Access(c)}ctor({Parameters(c)})",
                MethodInfo m when Visible(m) && !m.IsSpecialName => $"{Access(m)}{Modifiers(m)}{Name(m.ReturnType, Nullability.Create(m.ReturnParameter))} {m.Name}{GenericArguments(m)}({Parameters(m)}){Constraints(m)}",
                MethodInfo m when Visible(m) && m.IsSpecialName && m.Name.StartsWith("op_", StringComparison.Ordinal) => $"{Access(m)}static {Name(m.ReturnType, Nullability.Create(m.ReturnParameter))} {m.Name}({Parameters(m)})",
                PropertyInfo p => Property(p),
                FieldInfo f when f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly => Field(f),
                EventInfo e when e.AddMethod is { } add && Visible(add) => $"{Access(add)}event {Name(e.EventHandlerType!)} {e.Name}",
                _ => null,
            };
            if (line is not null && !line.Contains('<' + "Clone>", StringComparison.Ordinal))
            {
                members.Add("  " + line);
            }
        }

        members.Sort(StringComparer.Ordinal);
        foreach (string member in members)
        {
            text.Append(member).Append('\n');
        }

        return text.ToString();
    }

    private static bool Visible(MethodBase m) => m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly;

    private static string Access(MethodBase m) => m.IsPublic ? "public " : "protected ";

    private static string Modifiers(MethodInfo m) =>
        (m.IsStatic ? "static " : "") + (m.IsAbstract ? "abstract " : m.IsVirtual && !m.IsFinal ? "virtual " : "");

    private static string? Property(PropertyInfo p)
    {
        MethodInfo? get = p.GetMethod is { } g && Visible(g) ? g : null;
        MethodInfo? set = p.SetMethod is { } s && Visible(s) ? s : null;
        if (get is null && set is null)
        {
            return null;
        }

        MethodInfo any = get ?? set!;
        bool init = set is not null && set.ReturnParameter.GetRequiredCustomModifiers().Any(t => t.Name == "IsExternalInit");
        string indexer = p.GetIndexParameters().Length > 0 ? "[" + string.Join(", ", p.GetIndexParameters().Select(x => $"{Name(x.ParameterType)} {x.Name}")) + "]" : "";
        string accessors = (get is not null ? "get; " : "") + (set is not null ? (init ? "init; " : "set; ") : "");
        return $"{Access(any)}{Modifiers(any)}{Name(p.PropertyType, Nullability.Create(p))} {p.Name}{indexer} {{ {accessors}}}";
    }

    private static string Field(FieldInfo f)
    {
        string prefix = (f.IsPublic ? "public " : "protected ") + (f.IsLiteral ? "const " : f.IsStatic ? "static " : "") + (f.IsInitOnly ? "readonly " : "");
        string value = f.IsLiteral ? " = " + Convert.ToString(f.GetRawConstantValue(), System.Globalization.CultureInfo.InvariantCulture) : "";
        return $"{prefix}{Name(f.FieldType, Nullability.Create(f))} {f.Name}{value}";
    }

    private static string TypeHeader(Type t)
    {
        string kind = t.IsInterface ? "interface" : t.IsEnum ? "enum" : t.IsValueType ? (t.IsByRefLike ? "ref struct" : "struct") : typeof(Delegate).IsAssignableFrom(t) ? "delegate" : "class";
        string modifiers = t.IsClass && t.IsAbstract && t.IsSealed ? "static " : t.IsClass && t.IsSealed && kind == "class" ? "sealed " : t.IsClass && t.IsAbstract ? "abstract " : "";
        var bases = new List<string>();
        if (t.BaseType is { } b && b != typeof(object) && b != typeof(ValueType) && b != typeof(Enum) && b != typeof(MulticastDelegate))
        {
            bases.Add(Name(b));
        }

        foreach (Type i in t.GetInterfaces().OrderBy(i => i.FullName, StringComparer.Ordinal))
        {
            if (i.IsPublic || i.IsNestedPublic)
            {
                bases.Add(Name(i));
            }
        }

        return $"{modifiers}{kind} {Name(t)}{(bases.Count > 0 ? " : " + string.Join(", ", bases) : "")}";
    }

    private static string GenericArguments(MethodInfo m) =>
        m.IsGenericMethodDefinition ? "<" + string.Join(", ", m.GetGenericArguments().Select(a => a.Name)) + ">" : "";

    // Generic constraints of a generic method, e.g. " where T : struct".
    private static string Constraints(MethodInfo m)
    {
        if (!m.IsGenericMethodDefinition)
        {
            return "";
        }

        var parts = new List<string>();
        foreach (Type a in m.GetGenericArguments())
        {
            var c = new List<string>();
            GenericParameterAttributes g = a.GenericParameterAttributes;
            if ((g & GenericParameterAttributes.NotNullableValueTypeConstraint) != 0)
            {
                c.Add("struct");
            }
            else if ((g & GenericParameterAttributes.ReferenceTypeConstraint) != 0)
            {
                c.Add("class");
            }

            c.AddRange(a.GetGenericParameterConstraints().Where(t => t != typeof(ValueType)).Select(t => Name(t)));
            if ((g & GenericParameterAttributes.DefaultConstructorConstraint) != 0 && (g & GenericParameterAttributes.NotNullableValueTypeConstraint) == 0)
            {
                c.Add("new()");
            }

            if (c.Count > 0)
            {
                parts.Add($" where {a.Name} : {string.Join(", ", c)}");
            }
        }

        return string.Concat(parts);
    }

    private static string Parameters(MethodBase m) => string.Join(", ", m.GetParameters().Select(p =>
        (p.Position == 0 && m.IsDefined(typeof(System.Runtime.CompilerServices.ExtensionAttribute), false) ? "this " : "")
        + (p.IsOut ? "out " : p.ParameterType.IsByRef ? (p.IsIn ? "in " : "ref ") : "")
        + (p.GetCustomAttributes(typeof(ParamArrayAttribute), false).Length > 0 ? "params " : "")
        + Name(p.ParameterType, Nullability.Create(p)) + " " + p.Name
        + (p.HasDefaultValue ? " = " + (p.DefaultValue is null ? (p.ParameterType.IsValueType && Nullable.GetUnderlyingType(p.ParameterType) is null ? "default" : p.ParameterType.IsGenericParameter ? "default" : "null") : Convert.ToString(p.DefaultValue, System.Globalization.CultureInfo.InvariantCulture)) : "")));

    // With nullability (from NullabilityInfoContext): "?" on nullable reference types, also inside
    // generic arguments and arrays, so that a change of a nullable annotation changes the listing.
    private static string Name(Type t, NullabilityInfo? nullability = null)
    {
        string q = nullability is { ReadState: NullabilityState.Nullable } && !t.IsValueType ? "?" : "";
        if (t.IsByRef)
        {
            return Name(t.GetElementType()!, nullability);
        }

        if (t.IsArray)
        {
            return Name(t.GetElementType()!, nullability?.ElementType) + "[]" + q;
        }

        if (t.IsGenericParameter)
        {
            return t.Name + q;
        }

        string name = t.IsNested ? Name(t.DeclaringType!) + "." + t.Name : (t.Namespace is null ? "" : t.Namespace + ".") + t.Name;
        if (t.IsGenericType)
        {
            int tick = name.IndexOf('`', StringComparison.Ordinal);
            if (tick >= 0)
            {
                name = name[..tick];
            }

            Type[] arguments = t.GetGenericArguments();
            NullabilityInfo[] argumentNullability = nullability?.GenericTypeArguments ?? [];
            name += "<" + string.Join(", ", arguments.Select((a, i) => Name(a, i < argumentNullability.Length ? argumentNullability[i] : null))) + ">";
        }

        return name + q;
    }
}
